//! Events for integrators on real Redis and PostgreSQL: each change writes
//! its event to the outbox in its own transaction, and the drain publishes it
//! to a stand-in for EventBridge on loopback once, in order per resource,
//! again with the same id after a crash mid-batch, and never for a change
//! that rolled back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use lectern::aws::Credentials;
use lectern::aws::sigv4;
use lectern::services::auth::Role;
use lectern::services::events::{self, DrainReport};
use lectern::store::outbox::{self, Event, Kind};
use lectern_tests::TestEnv;
use lectern_tests::fake_eventbridge::{Call, FakeEventBridge};
use serde_json::{Value, json};
use uuid::Uuid;

/// An environment publishing to a fresh fake bus.
async fn with_bus(extra: &[(&'static str, String)]) -> (TestEnv, FakeEventBridge) {
    let fake = FakeEventBridge::default();
    let endpoint = fake.start().await;
    let mut vars = FakeEventBridge::vars(&endpoint);
    vars.extend_from_slice(extra);
    (TestEnv::with_vars(&vars).await, fake)
}

async fn drain(env: &TestEnv) -> DrainReport {
    events::drain(&env.app).await.expect("the drain succeeds")
}

/// The outbox: (seq, event id, detail type, published) in seq order.
async fn outbox_rows(env: &TestEnv) -> Vec<(i64, Uuid, String, bool)> {
    env.sql()
        .await
        .query(
            "SELECT seq, event_id, detail_type, published_at IS NOT NULL FROM outbox ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Enqueues `events` in one committed transaction, as a writer would.
async fn enqueue(env: &TestEnv, events: &[Event]) {
    let mut client = env.app.db().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    outbox::enqueue(&tx, events).await.unwrap();
    tx.commit().await.unwrap();
}

/// `n` events about each of `resources` (user.erased, whose data is just an id).
fn events_about(resources: &[Uuid], n: usize) -> Vec<Event> {
    (0..n)
        .flat_map(|_| resources.iter())
        .map(|&r| Event::new(Kind::UserErased, r, json!({ "user_id": r })))
        .collect()
}

fn schema(detail_type: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/events")
        .join(format!("{detail_type}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{detail_type}: {e}"))
}

/// Every delivered event matches its kind's schema in docs/events/.
fn assert_schemas(delivered: &[Value]) {
    for event in delivered {
        let kind = event["type"].as_str().unwrap();
        let validator = schema(kind);
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}\n{event:#}");
    }
}

/// The call was a signed `PutEvents` of JSON 1.1 for `events` in eu-west-1,
/// its entries from `lectern` on the test bus, at most 10 and at most one per resource.
fn assert_put_events(call: &Call) {
    assert_eq!(call.target, "AWSEvents.PutEvents");
    assert_eq!(call.content_type, "application/x-amz-json-1.1");
    assert!(
        call.authorization.contains(
            "/eu-west-1/events/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="
        ),
        "{}",
        call.authorization
    );
    assert_eq!(call.security_token.as_deref(), Some("fake-session-token"));
    let format =
        time::format_description::parse("[year][month][day]T[hour][minute][second]Z").unwrap();
    let at = time::PrimitiveDateTime::parse(&call.amz_date, &format)
        .unwrap()
        .assume_utc();
    let again = sigv4::sign(
        &Credentials {
            access_key_id: "AKIDLECTERNTEST".into(),
            secret_access_key: "not-a-real-secret-key-for-tests-only".into(),
            session_token: Some("fake-session-token".into()),
        },
        "eu-west-1",
        "events",
        at,
        &sigv4::Request {
            method: "POST",
            host: &call.host,
            path: "/",
            headers: &[
                ("content-type", &call.content_type),
                ("x-amz-target", &call.target),
            ],
            body: &call.body,
        },
    );
    assert_eq!(
        again.authorization, call.authorization,
        "signed over what was sent"
    );
    let entries = call.entries();
    assert!((1..=10).contains(&entries.len()), "{}", entries.len());
    let mut resources = HashSet::new();
    for entry in &entries {
        assert_eq!(entry["Source"], "lectern");
        assert_eq!(entry["EventBusName"], "lectern-test");
        let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(entry["DetailType"], detail["type"]);
        assert!(entry["Time"].is_i64());
        assert!(
            resources.insert(detail["resource"]["id"].clone()),
            "two events of one resource in one call: {entries:#?}"
        );
    }
}

/// Delivered events of this type.
fn of<'a>(delivered: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    delivered
        .iter()
        .filter(|e| e["type"] == detail_type)
        .collect()
}

/// Per resource, the sequence numbers delivered, in delivery order.
fn sequences_by_resource(delivered: &[Value]) -> BTreeMap<String, Vec<i64>> {
    let mut by: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in delivered {
        by.entry(e["resource"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["sequence"].as_i64().unwrap());
    }
    by
}

fn from_now(secs: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A practice assessment of `items` items assigned to the environment's class; its id.
async fn assignment(env: &TestEnv, teacher: &str, pool: Uuid, items: u32) -> Uuid {
    let r = env
        .call_as(
            Some(teacher),
            Method::POST,
            "/v1/assessments",
            Some(json!({
                "organization_id": env.org, "name": "Quiz", "pool_id": pool, "mode": "practice",
                "config": { "max_items": items, "min_items": items, "se_target": null },
                "time_limit_s": 1800
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let assessment = r.body["id"].as_str().unwrap().to_owned();
    let r = env
        .call_as(
            Some(teacher),
            Method::POST,
            "/v1/assignments",
            Some(json!({ "assessment_id": assessment, "class_id": env.class,
                         "closes_at": from_now(86_400), "max_attempts": 3 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().parse().unwrap()
}

/// Starts an attempt as `token`: (test id, first question).
async fn attempt(env: &TestEnv, token: &str, assignment: Uuid) -> (String, Value) {
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": assignment })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["test_id"].as_str().unwrap().to_owned(),
        r.body["question"].clone(),
    )
}

/// Answers every question until the stop rule fires; the last answer's body.
async fn answer_all(env: &TestEnv, token: &str, test: &str, mut question: Value) -> Value {
    loop {
        let r = env.answer_as(token, test, &question, true).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["status"] == "completed" {
            return r.body;
        }
        question = r.body["next_question"].clone();
    }
}

async fn end(env: &TestEnv, token: &str, test: &str) -> StatusCode {
    env.call_as(
        Some(token),
        Method::POST,
        &format!("/v1/tests/{test}/end"),
        None,
    )
    .await
    .status
}

/// Every kind of event, each caused through the API (the sweeper and a
/// calibration run included), is published once, matching its schema, in
/// order per resource; draining again publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_publishes_its_event_once_in_order() {
    let (env, fake) = with_bus(&[]).await;
    let pool = env.demo_pool(40).await;
    let (teacher_id, teacher) = env.user(Role::Teacher).await;
    let (student, token) = env.user(Role::Student).await;
    let assignment = assignment(&env, &teacher, pool, 3).await;

    // Completed by the stop rule, then ended: test.completed, test.ended, assignment.completed.
    let (test, first) = attempt(&env, &token, assignment).await;
    let last = answer_all(&env, &token, &test, first).await;
    assert_eq!(last["items_answered"], 3);
    assert_eq!(end(&env, &token, &test).await, StatusCode::OK);
    assert_eq!(end(&env, &token, &test).await, StatusCode::OK, "idempotent");
    // Released twice: one event.
    for _ in 0..2 {
        let r = env
            .call_as(
                Some(&teacher),
                Method::POST,
                &format!("/v1/assignments/{assignment}/release"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // An attempt past its deadline, closed by the sweeper: test.timed_out, assignment.completed.
    let (late, _) = attempt(&env, &token, assignment).await;
    let late: Uuid = late.parse().unwrap();
    env.sql()
        .await
        .execute(
            "UPDATE test_sessions SET deadline = now() - interval '1 second' WHERE id = $1",
            &[&late],
        )
        .await
        .unwrap();
    // A test left idle with its live state gone: test.abandoned, by the same sweep.
    let r = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student,
                    "config": { "max_items": 5, "min_items": 5, "se_target": null } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let idle: Uuid = r.body["test_id"].as_str().unwrap().parse().unwrap();
    env.sql()
        .await
        .execute(
            "UPDATE test_sessions SET updated_at = now() - interval '2 hours' WHERE id = $1",
            &[&idle],
        )
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(env.app.redis().keys().test_state(idle))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    let swept = lectern::services::sweep::sweep(&env.app).await.unwrap();
    assert_eq!((swept.timed_out, swept.abandoned), (1, 1), "{swept:?}");
    // A calibration run (it fails: the pool has no pretest items): calibration.finished.
    let r = env
        .post(
            &format!("/v1/pools/{pool}/calibrations"),
            json!({ "min_responses": 10 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let calibration = r.body["calibration_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let finished = loop {
        let r = env.get(&format!("/v1/calibrations/{calibration}")).await;
        if !["queued", "running"].contains(&r.body["status"].as_str().unwrap()) {
            break r.body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // An erasure (the erasure feature calls this in its transaction): user.erased.
    let erased = Uuid::new_v4();
    {
        let mut client = env.app.db().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        outbox::user_erased(&tx, erased).await.unwrap();
        tx.commit().await.unwrap();
    }

    // Nothing left the outbox yet: tests drain by hand.
    assert!(fake.calls().is_empty());
    let rows = outbox_rows(&env).await;
    assert_eq!(rows.len(), 9, "{rows:#?}");
    let report = drain(&env).await;
    assert_eq!(
        (report.published, report.refused, report.busy),
        (9, 0, false)
    );
    assert!(outbox_rows(&env).await.iter().all(|r| r.3));
    for call in fake.calls() {
        assert_put_events(&call);
    }
    let delivered = fake.delivered();
    assert_schemas(&delivered);
    // Once each, with the ids in the outbox.
    let ids: HashSet<String> = delivered
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let stored: HashSet<String> = rows.iter().map(|r| r.1.to_string()).collect();
    assert_eq!(ids, stored);
    let count = |t: &str| of(&delivered, t).len();
    let kinds: Vec<(&str, usize)> = Kind::ALL
        .iter()
        .map(|k| (k.detail_type(), count(k.detail_type())))
        .collect();
    assert_eq!(
        kinds,
        [
            ("test.completed", 1),
            ("test.ended", 1),
            ("test.timed_out", 1),
            ("test.abandoned", 1),
            ("assignment.completed", 2),
            ("assignment.results_released", 1),
            ("calibration.finished", 1),
            ("user.erased", 1),
        ]
    );
    // What each one says.
    let completed = of(&delivered, "test.completed")[0];
    assert_eq!(completed["resource"], json!({ "kind": "test", "id": test }));
    assert_eq!(completed["data"]["student_id"], student.to_string());
    assert_eq!(completed["data"]["assignment_id"], assignment.to_string());
    assert_eq!(completed["data"]["items_answered"], 3);
    assert!(completed["data"]["ended_at"].is_null());
    let ended = of(&delivered, "test.ended")[0];
    assert_eq!(ended["data"]["test_id"], test);
    assert!(ended["data"]["ended_at"].is_string());
    let by_test: HashMap<&str, &Value> = of(&delivered, "assignment.completed")
        .into_iter()
        .map(|e| (e["data"]["test_id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by_test[test.as_str()]["data"]["status"], "ended");
    assert_eq!(
        by_test[late.to_string().as_str()]["data"]["status"],
        "timed_out"
    );
    assert_eq!(by_test[test.as_str()]["data"]["attempt"], 1);
    assert_eq!(
        of(&delivered, "test.timed_out")[0]["data"]["test_id"],
        late.to_string()
    );
    assert_eq!(
        of(&delivered, "test.abandoned")[0]["data"]["test_id"],
        idle.to_string()
    );
    let released = of(&delivered, "assignment.results_released")[0];
    assert_eq!(released["resource"]["id"], assignment.to_string());
    assert_eq!(released["data"]["released_by"], teacher_id.to_string());
    let calibrated = of(&delivered, "calibration.finished")[0];
    assert_eq!(calibrated["data"]["calibration_id"], calibration);
    assert_eq!(calibrated["data"]["status"], finished["status"]);
    assert_eq!(
        of(&delivered, "user.erased")[0]["data"],
        json!({ "user_id": erased })
    );
    // In order per resource: the test completed before it ended; the
    // assignment's first completion, then its release, then the late attempt.
    for (resource, seqs) in sequences_by_resource(&delivered) {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{resource}: {seqs:?}");
    }
    assert!(completed["sequence"].as_i64() < ended["sequence"].as_i64());
    assert!(
        by_test[test.as_str()]["sequence"].as_i64() < released["sequence"].as_i64()
            && released["sequence"].as_i64()
                < by_test[late.to_string().as_str()]["sequence"].as_i64()
    );

    // Drained: nothing more.
    let calls = fake.calls().len();
    assert_eq!(drain(&env).await.published, 0);
    assert_eq!(fake.calls().len(), calls);
}

/// A change that rolls back leaves no event: an end whose proficiency
/// update fails after the test row was updated answers 5xx, and nothing is
/// published; the retried end publishes its events once.
#[tokio::test]
async fn a_rolled_back_change_publishes_nothing() {
    let (env, fake) = with_bus(&[]).await;
    let pool = env.demo_pool(40).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, token) = env.user(Role::Student).await;
    let assignment = assignment(&env, &teacher, pool, 3).await;
    let (test, first) = attempt(&env, &token, assignment).await;
    answer_all(&env, &token, &test, first).await;
    drain(&env).await;
    assert_eq!(of(&fake.delivered(), "test.completed").len(), 1);
    // The last statement of the end's transaction fails.
    let sql = env.sql().await;
    sql.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON student_proficiencies
             FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();
    let status = end(&env, &token, &test).await;
    assert!(status.is_server_error(), "{status}");
    let row = sql
        .query_one(
            "SELECT status FROM test_sessions WHERE id = $1::text::uuid",
            &[&test],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "completed", "the end rolled back");
    assert_eq!(outbox_rows(&env).await.len(), 1, "only test.completed");
    assert_eq!(drain(&env).await.published, 0);
    assert_eq!(fake.delivered().len(), 1);
    // Once the end commits, its events follow, once.
    sql.batch_execute("DROP TRIGGER refuse ON student_proficiencies")
        .await
        .unwrap();
    assert_eq!(end(&env, &token, &test).await, StatusCode::OK);
    assert_eq!(drain(&env).await.published, 2);
    let delivered = fake.delivered();
    let types: Vec<&str> = delivered
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["test.completed", "test.ended", "assignment.completed"]
    );
}

/// A publisher that dies after EventBridge took a call's entries but before
/// it marked them published: the next drain publishes those again, with the
/// same ids, and nothing that was marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_batch_redelivers_with_the_same_ids() {
    let (env, fake) = with_bus(&[]).await;
    let resources: Vec<Uuid> = (0..25).map(|_| Uuid::new_v4()).collect();
    let events = events_about(&resources, 1);
    enqueue(&env, &events).await;
    fake.hang_on_call(2);
    let app = env.app.clone();
    let crashing = tokio::spawn(async move { events::drain(&app).await });
    tokio::time::timeout(Duration::from_secs(10), fake.hung())
        .await
        .expect("the second call arrives");
    crashing.abort();
    assert!(crashing.await.unwrap_err().is_cancelled());
    assert_eq!(
        fake.delivered().len(),
        20,
        "EventBridge has two calls' events"
    );
    // The lock goes with the dead drain's transaction (rolled back as its connection is dropped).
    let started = Instant::now();
    let report = loop {
        let report = drain(&env).await;
        if !report.busy {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the lock stays held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        report.published, 15,
        "the unmarked second call's 10 and the last 5"
    );
    let delivered = fake.delivered();
    assert_eq!(delivered.len(), 35);
    let ids: Vec<&str> = delivered
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 25, "every event, under its own id");
    let twice: HashSet<&str> = counts
        .iter()
        .filter(|(_, n)| **n == 2)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        twice,
        ids[10..20].iter().copied().collect(),
        "the second call again"
    );
    assert!(counts.values().all(|&n| n <= 2));
    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        counts.keys().map(|k| k.to_string()).collect::<HashSet<_>>(),
        expected
    );
    assert!(outbox_rows(&env).await.iter().all(|r| r.3));
}

/// An entry EventBridge refuses stays unpublished, and so does every later
/// event of its resource, while other resources' events go on; a call that
/// fails as a whole marks nothing. Each resource's events arrive in order.
#[tokio::test]
async fn refused_entries_hold_back_their_resource_only() {
    let (env, fake) = with_bus(&[]).await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let events = events_about(&[a, b, a, c, a, b], 1);
    enqueue(&env, &events).await;
    let a1 = events[0].id.to_string();
    fake.refuse(std::slice::from_ref(&a1));
    let report = drain(&env).await;
    assert_eq!((report.published, report.refused), (3, 1), "{report:?}");
    let published: Vec<String> = fake
        .delivered()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, [b, c, b].map(|u| u.to_string()));
    let row = env
        .sql()
        .await
        .query_one(
            "SELECT attempts, last_error, published_at IS NULL FROM outbox WHERE event_id = $1",
            &[&events[0].id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(row.get::<_, String>(1).contains("InternalFailure"));
    assert!(row.get::<_, bool>(2));
    // EventBridge down: the drain fails and marks nothing.
    fake.accept_all();
    fake.fail_next_calls(1);
    let failed = events::drain(&env.app).await.unwrap_err();
    assert!(failed.to_string().contains("500"), "{failed}");
    assert_eq!(fake.delivered().len(), 3);
    // Back: a's three events, in order.
    assert_eq!(drain(&env).await.published, 3);
    let delivered = fake.delivered();
    let a_ids: Vec<&str> = delivered
        .iter()
        .filter(|e| e["resource"]["id"] == a.to_string())
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    let expected = [&events[0], &events[2], &events[4]].map(|e| e.id.to_string());
    assert_eq!(a_ids, expected);
    for call in fake.calls().iter().filter(|c| !c.entries().is_empty()) {
        assert_put_events(call);
    }
}

/// Two transactions with events about one resource: the second waits for
/// the first to commit before its event takes a sequence number, so a drain
/// in between publishes neither out of order, and afterwards both in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_of_one_resource_publish_in_commit_order() {
    let (env, fake) = with_bus(&[]).await;
    let resource = Uuid::new_v4();
    let first = events_about(&[resource], 1);
    let mut client = env.app.db().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    outbox::enqueue(&tx, &first).await.unwrap();
    // The second writer, while the first is still open.
    let second = events_about(&[resource], 1);
    let app = env.app.clone();
    let later = second.clone();
    let writer = tokio::spawn(async move {
        let mut client = app.db().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        outbox::enqueue(&tx, &later).await.unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the second waits for the first");
    assert_eq!(drain(&env).await.published, 0);
    tx.commit().await.unwrap();
    writer.await.unwrap();
    assert_eq!(drain(&env).await.published, 2);
    let ids: Vec<String> = fake
        .delivered()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [first[0].id.to_string(), second[0].id.to_string()]);
}

/// Two drains at once (two containers) publish every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drainers_at_once_do_not_double_publish() {
    let (env, fake) = with_bus(&[]).await;
    let resources: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    enqueue(&env, &events_about(&resources, 3)).await;
    let other = lectern::App::new(env.app.config().clone()).unwrap();
    let mut published = 0;
    // Each stops when it finds the other holding the lock; run both until all is out.
    for _ in 0..50 {
        if published >= 180 {
            break;
        }
        let (one, two) = tokio::join!(events::drain(&env.app), events::drain(&other));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(one.published + two.published > 0 || one.busy || two.busy);
        published += one.published + two.published;
    }
    assert_eq!(published, 180);
    let delivered = fake.delivered();
    assert_eq!(delivered.len(), 180, "none twice");
    let ids: HashSet<&str> = delivered
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 180);
    for (resource, seqs) in sequences_by_resource(&delivered) {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{resource}: {seqs:?}");
    }
}

/// With no bus configured (local development) events are logged and marked
/// published (on Lambda that is an error instead); with drains after writes on, an end publishes without anyone draining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bus_events_are_logged_and_after_writes_they_drain_at_once() {
    let env = TestEnv::new().await;
    assert!(env.app.config().events.bus.is_none());
    enqueue(&env, &events_about(&[Uuid::new_v4()], 2)).await;
    let report = drain(&env).await;
    assert_eq!(report.published, 2);
    assert!(outbox_rows(&env).await.iter().all(|r| r.3));
    // On Lambda a missing bus is an error: nothing is marked published.
    let lambda = TestEnv::with_vars(&[("AWS_LAMBDA_FUNCTION_NAME", "lectern-events".into())]).await;
    enqueue(&lambda, &events_about(&[Uuid::new_v4()], 1)).await;
    let refused = events::drain(&lambda.app).await.unwrap_err();
    assert!(refused.to_string().contains("EVENT_BUS_NAME"), "{refused}");
    assert!(outbox_rows(&lambda).await.iter().all(|r| !r.3));

    let (env, fake) = with_bus(&[("EVENTS_DRAIN_AFTER_WRITES", "true".into())]).await;
    let pool = env.demo_pool(40).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, token) = env.user(Role::Student).await;
    let assignment = assignment(&env, &teacher, pool, 2).await;
    let (test, first) = attempt(&env, &token, assignment).await;
    answer_all(&env, &token, &test, first).await;
    assert_eq!(end(&env, &token, &test).await, StatusCode::OK);
    let started = Instant::now();
    while fake.delivered().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            fake.delivered()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = fake.delivered();
    let types: HashSet<&str> = delivered
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        HashSet::from(["test.completed", "test.ended", "assignment.completed"])
    );
    assert_eq!(delivered.len(), 3, "once each");
}

/// Drain throughput into the fake (`cargo nextest run -p lectern-tests
/// --run-ignored only drain_throughput --no-capture`): events per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn drain_throughput() {
    let (env, fake) = with_bus(&[]).await;
    let n = 5_000;
    let resources: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    for chunk in events_about(&resources, 1).chunks(1_000) {
        enqueue(&env, chunk).await;
    }
    let started = Instant::now();
    let report = drain(&env).await;
    let took = started.elapsed();
    assert_eq!(report.published, n as u64);
    assert_eq!(fake.delivered().len(), n);
    println!(
        "drained {n} events in {} PutEvents calls in {took:.2?}: {:.0} events/s",
        report.calls,
        n as f64 / took.as_secs_f64()
    );
}
