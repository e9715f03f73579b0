//! After a chaos run: every answer the server acknowledged is in PostgreSQL
//! exactly once (the response sent, at the position acknowledged), and no
//! test of the run is stuck in progress.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use crate::After;
use crate::client::{Conn, Failure};
use crate::report::{Answer, Report};
use crate::student::problem_summary;

/// Examples kept of each kind of problem.
const EXAMPLES: usize = 5;
/// How long the check keeps trying to finish one test (the outages are over,
/// but a connection pool may still be recovering).
const FINISH_WITHIN: Duration = Duration::from_secs(15);

/// A test the check could neither resume nor end, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    /// The test.
    pub test_id: Uuid,
    /// Its status in PostgreSQL after the run.
    pub status: String,
    /// What the API answered.
    pub reason: String,
}

/// What PostgreSQL holds of a run, against what the server acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verification {
    /// Answers the server acknowledged (200), warm-up included.
    pub answers_acknowledged: u64,
    /// Of which in PostgreSQL exactly once, with the response sent, at the
    /// position (`seq`) the reply's `items_answered` gave.
    pub answers_verified: u64,
    /// Acknowledged, and not in PostgreSQL.
    pub missing: u64,
    /// Acknowledged, and in PostgreSQL more than once (or acknowledged twice
    /// at different positions).
    pub duplicated: u64,
    /// In PostgreSQL once, but with another response or position.
    pub mismatched: u64,
    /// Answers in PostgreSQL that no acknowledgment covers: the client gave
    /// up on a request the server had recorded. Allowed (the client never
    /// heard back), and counted.
    pub unacknowledged: u64,
    /// Tests of the run's students in PostgreSQL.
    pub tests: u64,
    /// Those by status after the run, before the check finished any.
    pub tests_by_status: BTreeMap<String, u64>,
    /// Tests in PostgreSQL whose start was never acknowledged (the client
    /// gave up on it).
    pub tests_unacknowledged: u64,
    /// Tests whose `items_answered` is not their number of answers.
    pub inconsistent: u64,
    /// Tests left `active` or `completed` that the check resumed (`GET
    /// next`, when active) and ended (`POST end`) as their student.
    pub finished_by_check: u64,
    /// Tests that could not be resumed or ended.
    pub stuck: Vec<Stuck>,
    /// A few examples of each problem found.
    pub problems: Vec<String>,
}

impl Verification {
    /// No acknowledged answer missing, duplicated or changed, every test
    /// consistent, none stuck.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.mismatched == 0
            && self.inconsistent == 0
            && self.stuck.is_empty()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "answers     {} acknowledged: {} in PostgreSQL exactly once, {} missing, {} duplicated, {} changed; {} recorded without an acknowledgment",
            self.answers_acknowledged,
            self.answers_verified,
            self.missing,
            self.duplicated,
            self.mismatched,
            self.unacknowledged
        )?;
        let statuses: Vec<String> = self
            .tests_by_status
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        write!(
            f,
            "tests       {} in PostgreSQL ({}); {} never acknowledged, {} inconsistent, {} finished by the check, {} stuck",
            self.tests,
            statuses.join(", "),
            self.tests_unacknowledged,
            self.inconsistent,
            self.finished_by_check,
            self.stuck.len()
        )?;
        for stuck in &self.stuck {
            write!(
                f,
                "\n  stuck {} ({}): {}",
                stuck.test_id, stuck.status, stuck.reason
            )?;
        }
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl Verification {
    fn problem(&mut self, kind: &str, text: String) {
        let seen = self.problems.iter().filter(|p| p.starts_with(kind)).count();
        if seen < EXAMPLES {
            self.problems.push(format!("{kind}: {text}"));
        }
    }
}

/// One answer row in PostgreSQL.
struct Row {
    response: String,
    seq: i32,
}

async fn connect(database_url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL to check the run: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The tests of `students` as (id, student, status, items_answered).
async fn tests_of(
    sql: &tokio_postgres::Client,
    students: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String, i32)>, String> {
    let rows = sql
        .query(
            "SELECT id, student_id, status, items_answered FROM test_sessions
             WHERE student_id = ANY($1)",
            &[&students],
        )
        .await
        .map_err(|e| format!("reading the tests: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// Checks a run's acknowledged answers and its students' tests against
/// PostgreSQL at `database_url` (straight, not through a proxy): what
/// [`Verification`] counts, except finishing tests left in progress (a chaos
/// [`run`](super::run) does that too). `report` must have been made with
/// [`LoadConfig::keep_answers`](crate::LoadConfig::keep_answers).
pub async fn check(database_url: &str, report: &Report) -> Result<Verification, String> {
    let sql = connect(database_url).await?;
    let tests = tests_of(&sql, &report.student_ids).await?;
    check_answers(&sql, report, &tests).await
}

/// [`check`], then resumes and ends, as its student, every test left in
/// progress; a test that cannot be is stuck.
pub(crate) async fn verify(
    database_url: &str,
    report: &Report,
    students: &mut [After],
    timeout: Duration,
) -> Result<Verification, String> {
    let sql = connect(database_url).await?;
    let ids: Vec<Uuid> = students.iter().map(|s| s.user_id).collect();
    let tests = tests_of(&sql, &ids).await?;
    let mut v = check_answers(&sql, report, &tests).await?;
    finish_in_progress(&sql, &ids, &tests, students, timeout, &mut v).await?;
    Ok(v)
}

/// Every answer acknowledged in `report` against the rows of `tests`.
async fn check_answers(
    sql: &tokio_postgres::Client,
    report: &Report,
    tests: &[(Uuid, Uuid, String, i32)],
) -> Result<Verification, String> {
    let ids: Vec<Uuid> = tests.iter().map(|t| t.0).collect();
    let rows = sql
        .query(
            "SELECT r.session_id, r.question_id, r.response, r.seq
             FROM test_responses r WHERE r.session_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(|e| format!("reading the answers: {e}"))?;
    let mut stored: HashMap<(Uuid, String), Vec<Row>> = HashMap::new();
    let mut per_test: HashMap<Uuid, i64> = HashMap::new();
    for r in &rows {
        let test: Uuid = r.get(0);
        *per_test.entry(test).or_default() += 1;
        stored.entry((test, r.get(1))).or_default().push(Row {
            response: r.get(2),
            seq: r.get(3),
        });
    }

    let mut v = Verification {
        answers_acknowledged: report.answers.len() as u64,
        tests: tests.len() as u64,
        ..Verification::default()
    };
    // The same answer acknowledged twice (it never is: a retry follows a
    // failure) must at least say the same position.
    let mut acknowledged: HashMap<(Uuid, &str), &Answer> = HashMap::new();
    for answer in &report.answers {
        let key = (answer.test_id, answer.question_id.as_str());
        if let Some(first) = acknowledged.insert(key, answer) {
            if first.items_answered != answer.items_answered {
                v.duplicated += 1;
                v.problem(
                    "acknowledged twice",
                    format!(
                        "test {} question {} at {} and {}",
                        answer.test_id,
                        answer.question_id,
                        first.items_answered,
                        answer.items_answered
                    ),
                );
            }
        }
    }
    for answer in acknowledged.values() {
        let key = (answer.test_id, answer.question_id.clone());
        match stored.get(&key).map(Vec::as_slice) {
            None | Some([]) => {
                v.missing += 1;
                v.problem(
                    "missing",
                    format!(
                        "test {} question {} (answer {})",
                        answer.test_id, answer.question_id, answer.items_answered
                    ),
                );
            }
            Some([row]) => {
                if row.response == answer.response
                    && i64::from(row.seq) == i64::from(answer.items_answered)
                {
                    v.answers_verified += 1;
                } else {
                    v.mismatched += 1;
                    v.problem(
                        "changed",
                        format!(
                            "test {} question {}: acknowledged {:?} as answer {}, stored {:?} as {}",
                            answer.test_id,
                            answer.question_id,
                            answer.response,
                            answer.items_answered,
                            row.response,
                            row.seq
                        ),
                    );
                }
            }
            Some(more) => {
                v.duplicated += 1;
                v.problem(
                    "duplicated",
                    format!(
                        "test {} question {}: {} rows",
                        answer.test_id,
                        answer.question_id,
                        more.len()
                    ),
                );
            }
        }
    }
    v.unacknowledged = stored
        .keys()
        .filter(|(test, question)| !acknowledged.contains_key(&(*test, question.as_str())))
        .count() as u64;

    let started: HashSet<Uuid> = report.tests.iter().copied().collect();
    for (test, _, status, items_answered) in tests {
        *v.tests_by_status.entry(status.clone()).or_default() += 1;
        if !started.contains(test) {
            v.tests_unacknowledged += 1;
        }
        let answers = per_test.get(test).copied().unwrap_or(0);
        if i64::from(*items_answered) != answers {
            v.inconsistent += 1;
            v.problem(
                "inconsistent",
                format!("test {test}: items_answered {items_answered}, {answers} answers stored"),
            );
        }
    }

    Ok(v)
}

/// Nothing may be left stuck: a test still in progress is resumed and ended
/// by its student, as a client coming back would.
async fn finish_in_progress(
    sql: &tokio_postgres::Client,
    ids: &[Uuid],
    tests: &[(Uuid, Uuid, String, i32)],
    students: &mut [After],
    timeout: Duration,
    v: &mut Verification,
) -> Result<(), String> {
    let mut conns: HashMap<Uuid, &mut Conn> = students
        .iter_mut()
        .map(|s| (s.user_id, &mut s.conn))
        .collect();
    for (test, student, status, _) in tests {
        if status != "active" && status != "completed" {
            continue;
        }
        let Some(conn) = conns.get_mut(student) else {
            continue;
        };
        match finish(conn, *test, status == "active", timeout).await {
            Ok(()) => v.finished_by_check += 1,
            Err(reason) => v.stuck.push(Stuck {
                test_id: *test,
                status: status.clone(),
                reason,
            }),
        }
    }
    // And PostgreSQL agrees that they ended.
    let stuck: HashSet<Uuid> = v.stuck.iter().map(|s| s.test_id).collect();
    for (test, _, status, _) in tests_of(sql, ids).await? {
        if (status == "active" || status == "completed") && !stuck.contains(&test) {
            v.stuck.push(Stuck {
                test_id: test,
                status,
                reason: "still in progress in PostgreSQL after the API ended it".into(),
            });
        }
    }
    Ok(())
}

/// Resumes (`GET next`, for an active test) and ends a test as its student,
/// trying again on 5xx and transport errors for a while.
async fn finish(
    conn: &mut Conn,
    test: Uuid,
    active: bool,
    timeout: Duration,
) -> Result<(), String> {
    if active {
        let path = format!("/v1/tests/{test}/next");
        send_until_ok(conn, Method::GET, &path, timeout).await?;
    }
    let path = format!("/v1/tests/{test}/end");
    let body = send_until_ok(conn, Method::POST, &path, timeout).await?;
    let ended: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("POST end: body: {e}"))?;
    if ended["status"] == "ended" {
        Ok(())
    } else {
        Err(format!("POST end answered status {}", ended["status"]))
    }
}

async fn send_until_ok(
    conn: &mut Conn,
    method: Method,
    path: &str,
    timeout: Duration,
) -> Result<hyper::body::Bytes, String> {
    let deadline = Instant::now() + FINISH_WITHIN;
    loop {
        let why = match conn.send(method.clone(), path, None, timeout).await {
            Ok(reply) if reply.status == StatusCode::OK => return Ok(reply.body),
            Ok(reply) if reply.status.is_server_error() => {
                format!("{method} {path}: {}", reply.status)
            }
            Ok(reply) => {
                return Err(format!(
                    "{method} {path}: {}: {}",
                    reply.status,
                    problem_summary(&reply.body)
                ));
            }
            Err(Failure::Transport(m)) => format!("{method} {path}: {m}"),
            Err(Failure::Timeout) => format!("{method} {path}: no response"),
        };
        if Instant::now() >= deadline {
            return Err(why);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
