//! One simulated student: takes whole tests, one after another, on its own
//! keep-alive connection (signed in, see [`crate::account`]), with
//! `with_reads` reads its dashboard after each, and tallies what it measured.
//! With `teach` it holds whole tutoring sessions instead ([`teach`]).

pub(crate) mod teach;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::client::{Conn, Failure};
use crate::report::{Answer, Endpoint, ErrorKind};
use crate::{LoadConfig, Stop};

/// Pause after a transport error or a timeout, so that a dead server is not
/// hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(100);
/// Timeout of the unmeasured `end` that closes an abandoned test or session.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest example kept per kind of error.
const EXAMPLE_CHARS: usize = 160;
/// With retries, the first pause before a try again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// What every student shares.
pub(crate) struct Shared {
    pub config: LoadConfig,
    /// The pool of the tests; `None` with `teach`.
    pub pool: Option<Uuid>,
    /// With `teach`: the course of the sessions (made by [`crate::setup`]).
    pub course: Option<Uuid>,
    /// Requests sent from then on are measured.
    pub warmup_end: Instant,
    /// Tests (or tutoring sessions) started so far, for [`Stop::Tests`].
    pub tickets: AtomicU64,
    pub live: Live,
}

/// Running totals since the start (warm-up included), for progress output.
#[derive(Default)]
pub(crate) struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub tests_started: AtomicU64,
    pub tests_completed: AtomicU64,
}

/// One kind of error at one endpoint.
#[derive(Debug)]
pub(crate) struct ErrorTally {
    pub count: u64,
    pub example: String,
}

/// What students measured (only the measured window, except the warm-up counts).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Per endpoint ([`Endpoint::index`]), successful requests' latency in µs.
    pub latencies: [Vec<u32>; Endpoint::COUNT],
    /// Per endpoint, failed requests.
    pub errors: [u64; Endpoint::COUNT],
    pub error_kinds: HashMap<(Endpoint, ErrorKind), ErrorTally>,
    pub tests_completed: u64,
    pub items_in_completed: u64,
    pub tests_failed: u64,
    pub sessions_completed: u64,
    pub inputs_in_completed: u64,
    pub sessions_failed: u64,
    pub warmup_requests: u64,
    pub warmup_errors: u64,
    pub reconnects: u64,
    /// Tries sent again after a failed one (with `retry`).
    pub retries: u64,
    /// Requests given up on: their retry budget ran out (with `retry`).
    pub gave_up: u64,
    /// With `keep_answers`: every answer acknowledged (200), warm-up included.
    pub answers: Vec<Answer>,
    /// With `keep_answers`: every test whose start was acknowledged (201).
    pub tests: Vec<Uuid>,
    /// With `keep_answers`: when each failed try was sent, in seconds since
    /// the students started, warm-up included.
    pub error_times: Vec<f64>,
}

impl Tally {
    /// Adds another student's tally to this one.
    pub fn merge(&mut self, other: Tally) {
        for (mine, theirs) in self.latencies.iter_mut().zip(other.latencies) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for (key, theirs) in other.error_kinds {
            self.error_kinds
                .entry(key)
                .and_modify(|mine| mine.count += theirs.count)
                .or_insert(theirs);
        }
        self.tests_completed += other.tests_completed;
        self.items_in_completed += other.items_in_completed;
        self.tests_failed += other.tests_failed;
        self.sessions_completed += other.sessions_completed;
        self.inputs_in_completed += other.inputs_in_completed;
        self.sessions_failed += other.sessions_failed;
        self.warmup_requests += other.warmup_requests;
        self.warmup_errors += other.warmup_errors;
        self.reconnects += other.reconnects;
        self.retries += other.retries;
        self.gave_up += other.gave_up;
        self.answers.extend(other.answers);
        self.tests.extend(other.tests);
        self.error_times.extend(other.error_times);
    }
}

/// Why a test (or tutoring session) was left before its end.
enum Abort {
    /// A request failed (already recorded); `backoff` after connection-level failures.
    Failed { backoff: bool },
    /// The run is stopping.
    Stopped,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    options: Vec<String>,
}

#[derive(Deserialize)]
struct Started {
    test_id: Uuid,
    question: Question,
}

#[derive(Deserialize)]
struct Submitted {
    status: String,
    items_answered: u32,
    next_question: Option<Question>,
}

#[derive(Deserialize)]
struct Ended {
    status: String,
}

/// `GET /v1/students/{id}/tests`.
#[derive(Deserialize)]
struct History {
    tests: Vec<serde::de::IgnoredAny>,
    total: i64,
}

/// `GET /v1/students/{id}/proficiency`.
#[derive(Deserialize)]
struct StudentProficiency {
    student_id: Uuid,
}

/// `GET /v1/users/{id}`.
#[derive(Deserialize)]
struct Profile {
    id: Uuid,
}

/// `GET /v1/pools`.
#[derive(Deserialize)]
struct Pools {
    #[allow(dead_code)] // Only its presence is checked.
    pools: Vec<serde::de::IgnoredAny>,
}

fn check_owner(what: &str, got: Uuid, me: Uuid) -> Result<(), String> {
    if got == me {
        Ok(())
    } else {
        Err(format!("{what} of {got}, asked for {me}"))
    }
}

fn check_question(q: &Question) -> Result<(), String> {
    if q.options.is_empty() {
        Err(format!("question {:?} has no options", q.id))
    } else {
        Ok(())
    }
}

/// Whether a client retries a request that failed this way: no response
/// (transport, timeout), the service unavailable for now (502, 503, 504), or
/// a 409 whose problem `type` ends in `-in-progress` (the first of the same
/// request is still being processed). `example` is the error's summary
/// ([`problem_summary`]).
fn retryable(kind: ErrorKind, example: &str) -> bool {
    match kind {
        ErrorKind::Transport | ErrorKind::Timeout => true,
        ErrorKind::Status(502..=504) => true,
        ErrorKind::Status(409) => example
            .split(':')
            .nth(3)
            .is_some_and(|slug| slug.trim_end().ends_with("-in-progress")),
        ErrorKind::Status(_) | ErrorKind::InvalidResponse => false,
    }
}

/// The detail of an error response: the problem's `type` and `detail`, else
/// the start of the body.
pub(crate) fn problem_summary(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.get("type").is_some_and(|t| t.is_string()) => {
            let kind = v["type"].as_str().unwrap_or_default();
            match v.get("detail").and_then(|d| d.as_str()) {
                Some(detail) => format!("{kind}: {detail}"),
                None => kind.to_string(),
            }
        }
        _ => String::from_utf8_lossy(body).trim().to_string(),
    };
    truncate(text)
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(EXAMPLE_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A simulated student.
pub(crate) struct Student {
    shared: Arc<Shared>,
    conn: Conn,
    /// The student's user id.
    me: Uuid,
    stop: watch::Receiver<bool>,
    tally: Tally,
    /// Whether a request was sent and the next one waits for the think time.
    think_pending: bool,
}

impl Student {
    /// Student `me` on `conn`, which already sends the student's token.
    pub fn new(shared: Arc<Shared>, conn: Conn, me: Uuid, stop: watch::Receiver<bool>) -> Student {
        Student {
            conn,
            me,
            shared,
            stop,
            tally: Tally::default(),
            think_pending: false,
        }
    }

    /// Takes tests (or holds tutoring sessions) until the run stops or, with
    /// [`Stop::Tests`], none is left; what it measured, and its connection
    /// and user id (for checks after the run).
    pub async fn run(mut self) -> (Tally, Conn, Uuid) {
        loop {
            if *self.stop.borrow() {
                break;
            }
            if let Stop::Tests(n) = self.shared.config.stop {
                if self.shared.tickets.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
            }
            self.shared
                .live
                .tests_started
                .fetch_add(1, Ordering::Relaxed);
            // The `end` that closes what is open, while something is.
            let mut open = None;
            let mut taken = if self.shared.config.teach {
                self.hold_session(&mut open).await
            } else {
                self.take_test(&mut open).await
            };
            if taken.is_ok() && self.shared.config.with_reads {
                taken = self.read_dashboard().await;
            }
            match taken {
                Ok(()) => {}
                Err(Abort::Stopped) => {
                    self.close(open).await;
                    break;
                }
                Err(Abort::Failed { backoff }) => {
                    self.close(open).await;
                    if backoff && self.pause(BACKOFF).await {
                        break;
                    }
                }
            }
        }
        self.tally.reconnects = self.conn.connects.saturating_sub(1);
        (self.tally, self.conn, self.me)
    }

    /// One whole test: start, (next,) answer until completed, end. `open` is
    /// the path of its `end` while it is open.
    async fn take_test(&mut self, open: &mut Option<String>) -> Result<(), Abort> {
        let config = &self.shared.config;
        let (max_items, with_next) = (config.max_items, config.with_next);
        let keep_answers = config.keep_answers;
        let pool = self.shared.pool.expect("tests have a pool");
        // Students take the pool's default design: choosing one is staff's.
        let body = json!({ "pool_id": pool });
        let (started, _): (Started, _) = self
            .call(
                Endpoint::Start,
                Method::POST,
                "/v1/tests",
                Some(body),
                |s: &Started| check_question(&s.question),
            )
            .await?;
        let base = format!("/v1/tests/{}", started.test_id);
        *open = Some(format!("{base}/end"));
        if keep_answers {
            self.tally.tests.push(started.test_id);
        }
        let mut question = started.question;
        let mut answered: u32 = 0;
        loop {
            if with_next {
                let path = format!("{base}/next");
                let served_id = question.id.clone();
                self.call(Endpoint::Next, Method::GET, &path, None, |q: &Question| {
                    if q.id == served_id {
                        Ok(())
                    } else {
                        Err(format!(
                            "next serves {:?}, the test served {served_id:?}",
                            q.id
                        ))
                    }
                })
                .await?;
            }
            let choice = question.options[rand::random_range(0..question.options.len())].clone();
            let body = json!({"question_id": question.id, "response": choice});
            let path = format!("{base}/responses");
            let n = answered + 1;
            let (submitted, _): (Submitted, _) = self
                .call(
                    Endpoint::Submit,
                    Method::POST,
                    &path,
                    Some(body),
                    |s: &Submitted| match (s.status.as_str(), &s.next_question) {
                        _ if s.items_answered != n => Err(format!(
                            "items_answered {} after {n} answers",
                            s.items_answered
                        )),
                        ("completed", None) => Ok(()),
                        ("completed", Some(_)) => {
                            Err("status completed with a next_question".to_string())
                        }
                        ("active", Some(_)) if n >= max_items => Err(format!(
                            "still active after {n} answers with max_items {max_items}"
                        )),
                        ("active", Some(q)) => check_question(q),
                        ("active", None) => Err("status active without a next_question".into()),
                        (other, _) => Err(format!("unexpected status {other:?}")),
                    },
                )
                .await?;
            if keep_answers {
                self.tally.answers.push(Answer {
                    test_id: started.test_id,
                    question_id: std::mem::take(&mut question.id),
                    response: choice,
                    items_answered: submitted.items_answered,
                });
            }
            answered = n;
            match submitted.next_question {
                Some(next) => question = next,
                None => break,
            }
        }
        let (_, measured): (Ended, _) = self
            .call(
                Endpoint::End,
                Method::POST,
                &format!("{base}/end"),
                None,
                |e: &Ended| {
                    if e.status == "ended" {
                        Ok(())
                    } else {
                        Err(format!("end gave status {:?}", e.status))
                    }
                },
            )
            .await?;
        *open = None;
        self.shared
            .live
            .tests_completed
            .fetch_add(1, Ordering::Relaxed);
        if measured {
            self.tally.tests_completed += 1;
            self.tally.items_in_completed += u64::from(answered);
        }
        Ok(())
    }

    /// What a dashboard shows after a test: the student's history,
    /// proficiency and profile, and the pool list; the first failure stops it.
    async fn read_dashboard(&mut self) -> Result<(), Abort> {
        let me = self.me;
        self.call(
            Endpoint::History,
            Method::GET,
            &format!("/v1/students/{me}/tests"),
            None,
            |h: &History| {
                if h.total < 1 || h.total < h.tests.len() as i64 {
                    Err(format!(
                        "history of {} tests (total {}) after a test ended",
                        h.tests.len(),
                        h.total
                    ))
                } else {
                    Ok(())
                }
            },
        )
        .await?;
        self.call(
            Endpoint::Proficiency,
            Method::GET,
            &format!("/v1/students/{me}/proficiency"),
            None,
            |p: &StudentProficiency| check_owner("proficiency", p.student_id, me),
        )
        .await?;
        self.call(
            Endpoint::Profile,
            Method::GET,
            &format!("/v1/users/{me}"),
            None,
            |p: &Profile| check_owner("profile", p.id, me),
        )
        .await?;
        self.call(
            Endpoint::Pools,
            Method::GET,
            "/v1/pools?limit=20",
            None,
            |_: &Pools| Ok(()),
        )
        .await?;
        Ok(())
    }

    /// Sends one request after the think time, checks and records its
    /// outcome; returns the parsed body and whether the request was measured.
    /// With [`LoadConfig::retry`](crate::LoadConfig::retry), a try that
    /// failed in a way a client retries ([`retryable`]) is recorded and sent
    /// again after a pause, until one succeeds or the budget is spent (the
    /// run stopping does not cut the retries short: the request's outcome
    /// is still wanted).
    async fn call<T: DeserializeOwned>(
        &mut self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<(T, bool), Abort> {
        self.before_request().await?;
        let timeout = self.shared.config.timeout;
        let retry = self.shared.config.retry;
        let body = body.map(|b| serde_json::to_vec(&b).expect("a JSON value serializes"));
        // A retried start must make one test: the same key on every try.
        let key = (retry.is_some() && endpoint == Endpoint::Start)
            .then(|| format!("loadtest-{}", Uuid::new_v4().simple()));
        let mut check = Some(check);
        let first_try = Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            let started = Instant::now();
            let measured = started >= self.shared.warmup_end;
            let result = self
                .conn
                .send_keyed(
                    method.clone(),
                    path,
                    body.as_deref(),
                    key.as_deref(),
                    timeout,
                )
                .await;
            self.think_pending = true;
            let outcome = match result {
                Err(Failure::Transport(message)) => Err((ErrorKind::Transport, message, true)),
                Err(Failure::Timeout) => Err((
                    ErrorKind::Timeout,
                    format!("no complete response within {} ms", timeout.as_millis()),
                    true,
                )),
                Ok(reply) if !reply.status.is_success() => Err((
                    ErrorKind::Status(reply.status.as_u16()),
                    problem_summary(&reply.body),
                    false,
                )),
                Ok(reply) => match serde_json::from_slice::<T>(&reply.body) {
                    Err(e) => Err((ErrorKind::InvalidResponse, format!("body: {e}"), false)),
                    Ok(value) => match check.take().expect("checked once: success returns")(&value)
                    {
                        Err(message) => Err((ErrorKind::InvalidResponse, message, false)),
                        Ok(()) => Ok((value, reply.latency)),
                    },
                },
            };
            let live = &self.shared.live;
            live.requests.fetch_add(1, Ordering::Relaxed);
            let (kind, example, backoff) = match outcome {
                Ok((value, latency)) => {
                    if measured {
                        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                        self.tally.latencies[endpoint.index()].push(micros);
                    } else {
                        self.tally.warmup_requests += 1;
                    }
                    return Ok((value, measured));
                }
                Err(failure) => failure,
            };
            live.errors.fetch_add(1, Ordering::Relaxed);
            if self.shared.config.keep_answers {
                let t0 = self.shared.warmup_end - self.shared.config.warmup;
                self.tally
                    .error_times
                    .push(started.saturating_duration_since(t0).as_secs_f64());
            }
            let can_retry = retry.is_some() && retryable(kind, &example);
            let again = can_retry && retry.is_some_and(|budget| first_try.elapsed() < budget);
            if measured {
                self.tally.errors[endpoint.index()] += 1;
                if again {
                    // Not a failed test (yet): the request is tried again.
                } else if endpoint.is_teach() {
                    self.tally.sessions_failed += 1;
                } else if !endpoint.is_read() {
                    // A read comes after its test ended.
                    self.tally.tests_failed += 1;
                }
                self.tally
                    .error_kinds
                    .entry((endpoint, kind))
                    .or_insert_with(|| ErrorTally {
                        count: 0,
                        example: truncate(example),
                    })
                    .count += 1;
            } else {
                self.tally.warmup_requests += 1;
                self.tally.warmup_errors += 1;
            }
            if !again {
                if can_retry {
                    self.tally.gave_up += 1;
                }
                return Err(Abort::Failed { backoff });
            }
            self.tally.retries += 1;
            tokio::time::sleep(pause.mul_f64(rand::random_range(0.5..1.5))).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Waits for the think time (if a request came before), unless the run stops.
    async fn before_request(&mut self) -> Result<(), Abort> {
        let think = self.shared.config.think;
        let stopped = if self.think_pending && !think.is_zero() {
            // Uniform on [0.5, 1.5]·think: same mean, and students do not march in step.
            self.pause(think.mul_f64(rand::random_range(0.5..1.5)))
                .await
        } else {
            *self.stop.borrow()
        };
        if stopped { Err(Abort::Stopped) } else { Ok(()) }
    }

    /// Sleeps; true when the run is stopping (which cuts the sleep short).
    async fn pause(&mut self, duration: Duration) -> bool {
        let woken = tokio::select! {
            _ = tokio::time::sleep(duration) => false,
            _ = self.stop.wait_for(|stop| *stop) => true,
        };
        woken || *self.stop.borrow()
    }

    /// Ends a test (or tutoring session) left before its end, unmeasured, so
    /// it leaves no live state behind on the server; `end` is the path of its end.
    /// With retries, it is sent again as any request is.
    async fn close(&mut self, end: Option<String>) {
        let Some(path) = end else { return };
        let timeout = CLEANUP_TIMEOUT.min(self.shared.config.timeout);
        let first_try = Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            let kind = match self.conn.send(Method::POST, &path, None, timeout).await {
                Ok(reply) if reply.status.is_success() => return,
                Ok(reply) => (
                    ErrorKind::Status(reply.status.as_u16()),
                    problem_summary(&reply.body),
                ),
                Err(Failure::Transport(_)) => (ErrorKind::Transport, String::new()),
                Err(Failure::Timeout) => (ErrorKind::Timeout, String::new()),
            };
            let budget = self.shared.config.retry;
            if !(budget.is_some_and(|b| first_try.elapsed() < b) && retryable(kind.0, &kind.1)) {
                return;
            }
            tokio::time::sleep(pause.mul_f64(rand::random_range(0.5..1.5))).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_retries() {
        let in_progress = problem_summary(
            br#"{"type":"urn:lectern:problem:submit-in-progress","status":409,"detail":"d"}"#,
        );
        let answered = problem_summary(
            br#"{"type":"urn:lectern:problem:already-answered","status":409,"detail":"d"}"#,
        );
        assert!(retryable(ErrorKind::Status(409), &in_progress));
        assert!(!retryable(ErrorKind::Status(409), &answered));
        for kind in [
            ErrorKind::Transport,
            ErrorKind::Timeout,
            ErrorKind::Status(502),
            ErrorKind::Status(503),
            ErrorKind::Status(504),
        ] {
            assert!(retryable(kind, ""), "{kind}");
        }
        for kind in [
            ErrorKind::Status(500),
            ErrorKind::Status(401),
            ErrorKind::Status(422),
            ErrorKind::InvalidResponse,
        ] {
            assert!(!retryable(kind, &in_progress), "{kind}");
        }
    }

    #[test]
    fn error_examples() {
        let body = br#"{"type":"urn:lectern:problem:already-answered","title":"t","status":409,"detail":"q1 is answered"}"#;
        assert_eq!(
            problem_summary(body),
            "urn:lectern:problem:already-answered: q1 is answered"
        );
        assert_eq!(problem_summary(b" oops \n"), "oops");
        let long = truncate("é".repeat(500));
        assert_eq!(long.chars().count(), EXAMPLE_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
