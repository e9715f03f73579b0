//! A load run through real HTTP against the whole API: every student signs up
//! and logs in, no errors, every answer (or tutoring input) recorded once, and
//! Redis left as the design says (every key with a TTL, no key of any question
//! in it).

use std::collections::BTreeSet;
use std::time::Duration;

use lectern::orchestrator::{self, Input, Intent, Lesson, State};
use lectern_loadtest::{
    EMAIL_DOMAIN, Endpoint, LoadConfig, LoadError, Stop, TEACH_COURSE_KEY, TEACH_SCRIPT,
};
use lectern_tests::TestEnv;
use uuid::Uuid;

/// The env's routes over real HTTP on a free loopback port.
pub(super) async fn serve(
    env: &TestEnv,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = env.router.clone();
    (
        addr,
        tokio::spawn(async move { axum::serve(listener, router).await }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_leaves_only_expiring_keys_and_no_answers_in_redis() {
    let env = TestEnv::new().await;
    let pool = env.token_pool(80).await;
    let (addr, server) = serve(&env).await;

    let config = LoadConfig {
        url: format!("http://{addr}"),
        students: 8,
        stop: Stop::Tests(24),
        pool: Some(pool),
        warmup: Duration::ZERO,
        with_next: true,
        ..LoadConfig::default()
    };
    let report = lectern_loadtest::run(&config, |_| {}).await.unwrap();
    server.abort();
    assert_eq!(report.error_count, 0, "{report}");
    assert!(report.tests_completed >= 24, "{report}");

    // Each student signed up as a user of its own.
    let sql = env.sql().await;
    let users: i64 = sql
        .query_one(
            "SELECT count(*) FROM users WHERE email LIKE $1",
            &[&format!("%@{EMAIL_DOMAIN}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users as usize, config.students);

    // Every submit the tool counted is one row, and every test it completed is ended.
    let submits = report.endpoints[&Endpoint::Submit].count;
    assert_eq!(env.count("test_responses").await as u64, submits);
    let ended: i64 = sql
        .query_one(
            "SELECT count(*) FROM test_sessions WHERE status = 'ended'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Tests cut short when the run stopped are ended too, unmeasured.
    assert!(ended as u64 >= report.tests_completed, "{ended}");
    let checked = env.assert_redis_clean().await;
    assert!(
        checked > 80,
        "pool, questions and nothing of the ended tests: {checked}"
    );
}

/// With dashboard reads after each test and an admin token: the four reads
/// succeed, and the cache section counts the window's lookups; a token that
/// is refused leaves the section out with a warning and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_with_reads_reports_the_cache() {
    let env = TestEnv::new().await;
    let pool = env.token_pool(40).await;
    let (addr, server) = serve(&env).await;

    let config = LoadConfig {
        url: format!("http://{addr}"),
        students: 4,
        stop: Stop::Tests(12),
        pool: Some(pool),
        warmup: Duration::ZERO,
        with_reads: true,
        admin_token: Some(env.admin_token()),
        ..LoadConfig::default()
    };
    let report = lectern_loadtest::run(&config, |_| {}).await.unwrap();
    // A token that is not an admin's costs the cache section, never the run.
    let refused = LoadConfig {
        students: 1,
        stop: Stop::Tests(1),
        admin_token: Some("not-a-token".into()),
        ..config.clone()
    };
    let without = lectern_loadtest::run(&refused, |_| {}).await.unwrap();
    server.abort();
    assert_eq!((without.error_count, without.tests_completed), (0, 1));
    assert_eq!(without.cache, None);
    let warning = without.cache_warning.expect("a warning");
    assert!(warning.contains("status 401"), "{warning}");
    assert!(!warning.contains("not-a-token"), "{warning}");
    assert!(!format!("{refused:?}").contains("not-a-token"));

    assert_eq!(report.error_count, 0, "{report}");
    assert_eq!(report.cache_warning, None, "{report}");
    let completed = report.tests_completed;
    assert!(completed >= 12, "{report}");
    for read in [
        Endpoint::History,
        Endpoint::Proficiency,
        Endpoint::Profile,
        Endpoint::Pools,
    ] {
        let stats = &report.endpoints[&read];
        // One of each after every completed test.
        assert_eq!(
            (stats.count, stats.errors),
            (completed, 0),
            "{read}: {report}"
        );
    }
    let cache = report.cache.as_ref().expect("a cache section");
    // History and proficiency are never hits here: start, every answer and
    // end invalidate the history, end the proficiency, so each read after an
    // end is the first. A profile changes with no test: after each student's
    // first read (4 students), every one is a hit.
    for kind in ["history", "proficiency"] {
        let c = cache.get(kind).expect("lookups");
        assert_eq!((c.lookups, c.hits), (completed, 0), "{kind}: {report}");
    }
    let profile = cache.get("user").expect("profile lookups");
    assert_eq!(profile.lookups, completed, "{report}");
    assert!(profile.misses <= 4, "{report}");
    // The pool list is shared by every student and changes with no test.
    let pools = cache.get("pools").expect("pool-list lookups");
    assert!(pools.lookups >= completed, "{report}");
    assert!(pools.hits > 0, "{report}");
}

/// Tutoring sessions under load: the script says every intent but `end` and,
/// from any line, completes a session within the bound the tool holds it to;
/// then a short run (which needs the admin, who sets up the organization,
/// class, course and invitation) has no errors, every input it counted is one
/// transition with an intent, every session it held is on the course it set
/// up and ended, and Redis keeps nothing of them but what expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teaching_load_run_records_every_input_once() {
    let said: BTreeSet<&str> = TEACH_SCRIPT
        .iter()
        .map(|line| orchestrator::classify(line).as_str())
        .collect();
    let wanted: BTreeSet<&str> = Intent::ALL
        .iter()
        .filter(|i| **i != Intent::End)
        .map(|i| i.as_str())
        .collect();
    assert_eq!(said, wanted);
    for segments in 1..=40 {
        for first in 0..TEACH_SCRIPT.len() {
            let lesson = Lesson {
                course_id: TEACH_COURSE_KEY.into(),
                module_index: 0,
                sub_topic_index: 0,
                total_segments: segments,
                segment_index: 0,
                course_version: None,
            };
            let mut ctx = orchestrator::start(Uuid::nil(), Uuid::nil(), lesson, 0).context;
            let mut inputs = 0;
            while ctx.state != State::Completed {
                let line = TEACH_SCRIPT[(first + inputs) % TEACH_SCRIPT.len()];
                ctx = orchestrator::decide(&ctx, &Input::new(line), 0)
                    .unwrap()
                    .context;
                inputs += 1;
            }
            assert!(
                inputs <= 2 * segments as usize + TEACH_SCRIPT.len(),
                "{segments} segments from line {first}: {inputs} inputs"
            );
        }
    }

    let env = TestEnv::new().await;
    let (addr, server) = serve(&env).await;
    let config = LoadConfig {
        url: format!("http://{addr}"),
        students: 4,
        stop: Stop::Tests(12),
        teach: true,
        segments: 6,
        warmup: Duration::ZERO,
        admin_token: Some(env.admin_token()),
        ..LoadConfig::default()
    };
    // Without the admin, nothing can be set up: refused before anything is sent.
    let without = LoadConfig {
        admin_token: None,
        ..config.clone()
    };
    match lectern_loadtest::run(&without, |_| {}).await {
        Err(LoadError::InvalidConfig(why)) => assert!(why.contains("admin token"), "{why}"),
        other => panic!("a teach run without an admin token: {other:?}"),
    }
    // A token that is not an admin's fails the first step of the set-up.
    let refused = LoadConfig {
        admin_token: Some("not-a-token".into()),
        ..config.clone()
    };
    match lectern_loadtest::run(&refused, |_| {}).await {
        Err(e @ LoadError::Organization { .. }) => {
            let why = e.to_string();
            assert!(
                why.contains("POST http://") && why.contains("status 401"),
                "{why}"
            );
            assert!(!why.contains("not-a-token"), "{why}");
        }
        other => panic!("a teach run with a refused token: {other:?}"),
    }
    let report = lectern_loadtest::run(&config, |_| {}).await.unwrap();
    server.abort();
    assert_eq!(report.error_count, 0, "{report}");
    assert_eq!(report.sessions_completed, 12, "{report}");
    let inputs = report.endpoint(Endpoint::TeachInput).count;
    for (endpoint, count) in [(Endpoint::TeachStart, 12), (Endpoint::TeachEnd, 12)] {
        assert_eq!(report.endpoint(endpoint).count, count, "{report}");
    }
    assert_eq!(report.endpoint(Endpoint::Start).count, 0, "{report}");
    assert!(inputs >= 12 * 6, "{report}");

    let sql = env.sql().await;
    let transitions: i64 = sql
        .query_one(
            "SELECT count(*) FROM teaching_transitions WHERE intent IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(transitions as u64, inputs, "{report}");
    // The refused runs set up nothing: one organization, whose one course
    // (the key the tool uses) every session was held on.
    let courses: Vec<String> = sql
        .query(
            "SELECT id::text FROM courses WHERE key = $1",
            &[&TEACH_COURSE_KEY],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let course = report.course_id.expect("the run's course").to_string();
    assert_eq!(courses, std::slice::from_ref(&course), "{report}");
    let members: i64 = sql
        .query_one(
            "SELECT count(*) FROM memberships m JOIN courses c ON c.org_id = m.org_id \
             WHERE c.id::text = $1 AND m.role = 'student'",
            &[&course],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(members as usize, config.students, "{report}");
    let sessions: Vec<(String, String, bool)> = sql
        .query(
            "SELECT course_id, state, ended_at IS NOT NULL FROM teaching_sessions",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(sessions.len(), 12);
    for session in &sessions {
        assert_eq!(session, &(course.clone(), "ended".into(), true));
    }
    env.assert_redis_clean().await;
    let teaching = format!("{}teaching:session:", env.prefix);
    let left: Vec<String> = env
        .redis_entries()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(&teaching))
        .collect();
    assert!(left.is_empty(), "ended sessions left in Redis: {left:?}");
}
