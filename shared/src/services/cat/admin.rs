//! What an operator sees of running tests and does to them: list them from
//! Redis, put Redis and PostgreSQL side by side, rebuild Redis, extend a test.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::audit::{self, Entry};

use super::Error;
use super::state::{self, LiveState, Replay, Serving};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::pools;
use crate::services::scope::{self, Denied, OrgOf};
use crate::store::pools::AnswerKey;
use crate::store::tests::{self as records, TestStatus};

/// The tools on one test are for its organization's org admins (and platform
/// admins); a test outside the caller's organizations does not exist for them.
/// Whether `caller` administers test `id`'s organization; the audit entry
/// of what they do to it, when they do.
async fn administers(
    app: &App,
    caller: &Caller,
    id: Uuid,
    action: &'static str,
) -> Result<Entry, Error> {
    let standing = scope::standing(app, caller.user_id, OrgOf::Test(id), None, None).await?;
    standing.org_admin().map_err(|denied| match denied {
        Denied::Hidden => Error::TestNotFound(id),
        Denied::Forbidden => Error::Forbidden(id),
    })?;
    Ok(Entry::new(action, "test", id).org(standing.org))
}

/// One test with live state in Redis.
#[derive(Debug, Serialize)]
pub struct ActiveTest {
    /// Test id.
    pub test_id: Uuid,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// Pool and version.
    pub pool_id: Uuid,
    /// Responses recorded.
    pub items_answered: u32,
    /// Current estimate.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Seconds before the state expires.
    pub ttl_s: f64,
}

/// A page of [`ActiveTest`]s.
#[derive(Debug, Serialize)]
pub struct ActivePage {
    /// Tests found on this page (about `limit`; SCAN pages are approximate).
    pub tests: Vec<ActiveTest>,
    /// Pass as `cursor` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Tests whose live state is in Redis, by SCAN (never KEYS) from `cursor` (a
/// `next_cursor` of an earlier page), about `limit` (100 unless asked, at most
/// 1000) a page.
pub async fn active(
    app: &App,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> Result<ActivePage, Error> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::InvalidConfig(format!(
            "limit must be from 1 to 1000 (got {limit})"
        )));
    }
    let mut cursor: u64 = match cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            Error::InvalidConfig(format!(
                "cursor must be a next_cursor of an earlier page (got {c:?})"
            ))
        })?,
    };
    let redis = app.redis();
    let mut ids = Vec::new();
    loop {
        let (next, found) = records::scan_states(redis, cursor, 500).await?;
        ids.extend(found);
        cursor = next;
        if cursor == 0 || ids.len() >= limit {
            break;
        }
    }
    let states = records::peek_states(redis, &ids).await?;
    let tests = ids
        .into_iter()
        .zip(states)
        .filter_map(|(test_id, stored)| {
            // Expired between the scan and the read, or unreadable: not listed.
            let stored = stored?;
            let s = LiveState::decode(&stored.stored).ok()?;
            Some(ActiveTest {
                test_id,
                student_id: s.student_id,
                pool_id: s.pool_id,
                items_answered: s.seq,
                theta: s.theta,
                se: s.se,
                ttl_s: stored.ttl_ms.max(0) as f64 / 1e3,
            })
        })
        .collect();
    Ok(ActivePage {
        tests,
        next_cursor: (cursor != 0).then(|| cursor.to_string()),
    })
}

/// A test's state as one side holds it.
#[derive(Debug, Serialize, PartialEq)]
pub struct SideView {
    /// Responses recorded.
    pub items_answered: u32,
    /// Current estimate.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// The question being served.
    pub current_question: Option<String>,
    /// Questions answered, in order.
    pub answered: Vec<String>,
    /// Whether each got its item's top score (was right, for a right/wrong item).
    pub correct: Vec<bool>,
    /// The score of each (0…m; 1/0 for a right/wrong item).
    pub scores: Vec<u8>,
}

/// The Redis side.
#[derive(Debug, Serialize)]
pub struct RedisSide {
    /// The state.
    #[serde(flatten)]
    pub state: SideView,
    /// Seconds before it expires.
    pub ttl_s: f64,
    /// Its size as stored.
    pub bytes: usize,
}

/// The PostgreSQL side.
#[derive(Debug, Serialize)]
pub struct PostgresSide {
    /// Lifecycle status.
    pub status: &'static str,
    /// The state.
    #[serde(flatten)]
    pub state: SideView,
    /// Kept alive until then by an administrator.
    #[serde(with = "time::serde::rfc3339::option")]
    pub keep_until: Option<OffsetDateTime>,
}

/// Redis and PostgreSQL side by side.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Test id.
    pub test_id: Uuid,
    /// The live state, if Redis has one.
    pub redis: Option<RedisSide>,
    /// The record.
    pub postgres: PostgresSide,
    /// True when Redis holds a state that disagrees with PostgreSQL.
    pub divergent: bool,
    /// What disagrees, one line each.
    pub differences: Vec<String>,
}

/// One running test of an organization, as its org admins see it.
#[derive(Debug, Serialize)]
pub struct RunningView {
    /// Test id.
    pub test_id: Uuid,
    /// The student.
    pub student_id: Option<Uuid>,
    /// Pool.
    pub pool_id: Uuid,
    /// `active` or `completed` (awaiting its end).
    pub status: &'static str,
    /// Responses recorded.
    pub items_answered: i32,
    /// Latest estimate.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Start time.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Last answer (or the start).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A page of an organization's running tests.
#[derive(Debug, Serialize)]
pub struct RunningPage {
    /// The page, newest first.
    pub tests: Vec<RunningView>,
    /// Page size asked for.
    pub limit: i64,
    /// Tests skipped.
    pub offset: i64,
    /// Running tests in all.
    pub total: i64,
}

/// An organization's running tests, from PostgreSQL (every container's, and
/// those whose Redis state is gone): for its org admins.
pub async fn running_in(
    app: &App,
    caller: &Caller,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<RunningPage, Error> {
    let standing =
        scope::standing(app, caller.user_id, OrgOf::Organization(org), None, None).await?;
    // No such organization is 404 for everyone (a platform admin passes every role check).
    if !standing.found {
        return Err(Error::OrgNotFound(org));
    }
    standing.org_admin().map_err(|denied| match denied {
        Denied::Hidden => Error::OrgNotFound(org),
        Denied::Forbidden => Error::AdminsOnly(org),
    })?;
    let (tests, total) = records::running_in(app.db(), org, limit, offset).await?;
    Ok(RunningPage {
        tests: tests
            .into_iter()
            .map(|t| RunningView {
                test_id: t.id,
                student_id: t.student_id,
                pool_id: t.pool_id,
                status: t.status.as_str(),
                items_answered: t.items_answered,
                theta: t.estimate.theta,
                se: t.estimate.se,
                started_at: t.started_at,
                updated_at: t.updated_at,
            })
            .collect(),
        limit,
        offset,
        total,
    })
}

/// Puts a test's Redis state and its PostgreSQL record side by side.
pub async fn inspect(app: &App, caller: &Caller, id: Uuid) -> Result<Inspection, Error> {
    let entry = administers(app, caller, id, "test.inspected").await?;
    audit::record_alone(app.db(), entry).await?;
    side_by_side(app, id).await
}

async fn side_by_side(app: &App, id: Uuid) -> Result<Inspection, Error> {
    let replay = Replay::load(app, id).await?;
    let stored = records::peek_state(app.redis(), id).await?;
    let t = &replay.record;
    let pg = SideView {
        items_answered: t.items_answered as u32,
        theta: t.estimate.theta,
        se: t.estimate.se,
        current_question: t.current_question.clone(),
        answered: replay
            .responses
            .iter()
            .map(|r| r.question_id.clone())
            .collect(),
        correct: replay.responses.iter().map(|r| r.correct).collect(),
        scores: replay.responses.iter().map(|r| r.score).collect(),
    };
    let mut differences = Vec::new();
    let redis = match stored {
        None => None,
        Some(stored) => match LiveState::decode(&stored.stored) {
            Err(e) => {
                differences.push(format!("the Redis state does not decode: {e}"));
                None
            }
            Ok(s) => {
                // Operational and pretest answers, merged where the plan puts them.
                let sequence = s.sequence(&s.plan(&replay.bank));
                let keys = pools::answer_key(app, t.pool_id, t.pool_version).await?;
                let side = SideView {
                    items_answered: s.seq,
                    theta: s.theta,
                    se: s.se,
                    current_question: s.current.map(|i| name(&replay, Serving::Item(i as usize))),
                    answered: sequence.iter().map(|&(q, _)| name(&replay, q)).collect(),
                    correct: sequence
                        .iter()
                        .map(|&(q, score)| top_score(&replay, &keys, q) == Some(score))
                        .collect(),
                    scores: sequence.iter().map(|&(_, score)| score).collect(),
                };
                differences.extend(compare(&side, &pg));
                if matches!(t.status, TestStatus::Ended | TestStatus::Abandoned) {
                    differences.push(format!(
                        "Redis holds a live state for a test that is {}",
                        t.status.as_str()
                    ));
                }
                if (s.pool_id, s.pool_version) != (t.pool_id, t.pool_version) {
                    differences.push("pool or pool version differs".into());
                }
                Some(RedisSide {
                    state: side,
                    ttl_s: stored.ttl_ms.max(0) as f64 / 1e3,
                    bytes: stored.bytes,
                })
            }
        },
    };
    Ok(Inspection {
        test_id: id,
        redis,
        postgres: PostgresSide {
            status: t.status.as_str(),
            state: pg,
            keep_until: t.keep_until,
        },
        divergent: !differences.is_empty(),
        differences,
    })
}

/// The question id of what was served, in the test's pool version.
fn name(replay: &Replay, served: Serving) -> String {
    let bank = &replay.bank;
    match served {
        Serving::Item(i) => bank.ids.get(i).cloned(),
        Serving::Pretest(j) => bank.pretest_ids.get(j).cloned(),
    }
    .unwrap_or_else(|| format!("<{served:?} not in the pool>"))
}

/// The top score of what was served, if it is in the pool.
fn top_score(replay: &Replay, keys: &AnswerKey, served: Serving) -> Option<u8> {
    let bank = &replay.bank.bank;
    match served {
        Serving::Item(i) => (i < bank.len()).then(|| bank.max_score(i)),
        Serving::Pretest(j) => keys.pretest.get(j).map(|k| k.top),
    }
}

fn compare(redis: &SideView, pg: &SideView) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, r: String, p: String| {
        if r != p {
            out.push(format!("{what}: Redis {r}, PostgreSQL {p}"));
        }
    };
    field(
        "items_answered",
        redis.items_answered.to_string(),
        pg.items_answered.to_string(),
    );
    field("theta", redis.theta.to_string(), pg.theta.to_string());
    field("se", redis.se.to_string(), pg.se.to_string());
    field(
        "current_question",
        format!("{:?}", redis.current_question),
        format!("{:?}", pg.current_question),
    );
    field(
        "answered",
        format!("{:?}", redis.answered),
        format!("{:?}", pg.answered),
    );
    field(
        "correct",
        format!("{:?}", redis.correct),
        format!("{:?}", pg.correct),
    );
    field(
        "scores",
        format!("{:?}", redis.scores),
        format!("{:?}", pg.scores),
    );
    out
}

/// Rebuilds a test's Redis state from PostgreSQL whatever Redis holds (and
/// removes it for a test that is over); returns the result side by side.
pub async fn sync(app: &App, caller: &Caller, id: Uuid) -> Result<Inspection, Error> {
    let entry = administers(app, caller, id, "test.synced").await?;
    audit::record_alone(app.db(), entry).await?;
    rebuild(app, id).await
}

async fn rebuild(app: &App, id: Uuid) -> Result<Inspection, Error> {
    let replay = Replay::load(app, id).await?;
    match replay.record.status {
        TestStatus::Active | TestStatus::Completed => {
            let state = LiveState::rebuild(&replay)?;
            let ttl = state::ttl_for(app, &replay.record);
            records::overwrite_state(app.redis(), id, (state.seq, &state.body()), ttl).await?;
            app.stale_tests().clear(id);
        }
        TestStatus::Ended | TestStatus::Abandoned | TestStatus::TimedOut => {
            records::delete_state(app.redis(), id).await?;
            app.stale_tests().clear(id);
        }
    }
    side_by_side(app, id).await
}

/// A test's extended life.
#[derive(Debug, Serialize)]
pub struct Extended {
    /// Test id.
    pub test_id: Uuid,
    /// The sweeper leaves the test alone until then.
    #[serde(with = "time::serde::rfc3339")]
    pub keep_until: OffsetDateTime,
    /// Seconds the Redis state now has left (it is rebuilt if it was gone).
    pub ttl_s: f64,
}

/// Keeps a running test alive for `seconds` (up to the configured maximum): in
/// PostgreSQL first, so the sweeper and any later rebuild honour it, then in Redis.
pub async fn extend(app: &App, caller: &Caller, id: Uuid, seconds: u32) -> Result<Extended, Error> {
    let entry = administers(app, caller, id, "test.extended").await?;
    let max = app.config().test_max_ttl.as_secs();
    if seconds == 0 || u64::from(seconds) > max {
        return Err(Error::InvalidConfig(format!(
            "seconds must be from 1 to {max} (TEST_MAX_TTL_SECS; got {seconds})"
        )));
    }
    let entry = entry.detail(serde_json::json!({ "seconds": seconds }));
    let Some(keep_until) = records::keep_until(app.db(), id, seconds, entry).await? else {
        let replay = Replay::load(app, id).await?;
        return Err(Error::NotActive(replay.record.status));
    };
    let ttl = std::time::Duration::from_secs(u64::from(seconds));
    if !records::extend_state(app.redis(), id, ttl).await? {
        rebuild(app, id).await?;
    }
    let ttl_s = records::peek_state(app.redis(), id)
        .await?
        .map_or(0.0, |s| s.ttl_ms.max(0) as f64 / 1e3);
    Ok(Extended {
        test_id: id,
        keep_until,
        ttl_s,
    })
}
