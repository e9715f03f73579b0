//! The adaptive-test loop: the engine decides, PostgreSQL records first,
//! Redis holds the hot state after. Keys stay in process memory.

pub mod admin;
mod config;
mod state;
mod view;

use std::collections::BTreeMap;

use uuid::Uuid;

pub use config::{SelectorKind, TestConfig, TestConfigInput};
pub use view::{
    ConceptProficiency, Ended, Proficiency, Question, Report, ResponseView, Started, Submitted,
};

use crate::app::App;
use crate::cache::Namespace;
use crate::services::auth::Caller;
use crate::services::pools;
use crate::services::scope::{self, Denied, OrgOf, OrgRole, Use};
use crate::store::StoreError;
use crate::store::pools::PoolBank;
use crate::store::tests::{self as records, Answer, CasOutcome, Lock, TestStatus};
use lectern_engine::{Estimate, FromProficiency, Initializer, StopReason};
use state::{LiveState, Replay};
use view::{classification, proficiency};

/// What can go wrong in the test loop, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No test with that id.
    #[error("no test with id {0}")]
    TestNotFound(Uuid),
    /// No pool with that id.
    #[error("no pool with id {0}")]
    PoolNotFound(Uuid),
    /// `student_id` names no user (or none the caller may see).
    #[error("no user with id {0}")]
    StudentNotFound(Uuid),
    /// `organization_id` names no organization the caller belongs to.
    #[error("no organization with id {0}")]
    OrgNotFound(Uuid),
    /// Who the test is for, or where it is taken, is not allowed or not clear.
    #[error("{0}")]
    InvalidStart(String),
    /// The caller is a member of the organization but not one of its org admins.
    #[error("only org admins of organization {0} may do this")]
    AdminsOnly(Uuid),
    /// A student naming another student.
    #[error("students start tests for themselves; leave student_id out")]
    StartForOthers,
    /// The pool has no items to serve.
    #[error("pool {0} has no items")]
    EmptyPool(Uuid),
    /// A configuration value out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// The test no longer takes answers.
    #[error("the test is {}; it takes no more answers", .0.as_str())]
    NotActive(TestStatus),
    /// The question answered is not the one being served.
    #[error("question {0:?} is not the question being served")]
    QuestionNotServed(String),
    /// This question's answer is already recorded.
    #[error("question {0:?} has already been answered")]
    AlreadyAnswered(String),
    /// The response is none of the question's options.
    #[error("response {response:?} is not one of the options of question {question:?}")]
    UnknownOption {
        /// Question answered.
        question: String,
        /// The response given.
        response: String,
    },
    /// Another submit of the same question is being recorded right now.
    #[error("an answer to question {0:?} is being recorded; retry if it does not show up")]
    SubmitInProgress(String),
    /// The caller may see the test but not take part in it (a teacher answering for a student).
    #[error("only the student taking test {0} (or an org admin) may do this")]
    Forbidden(Uuid),
    /// Answers kept landing while the test was being ended.
    #[error("test {0} kept changing while it was being ended; try again")]
    Contended(Uuid),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Body of a start request after parsing.
pub struct StartRequest {
    /// Pool to draw from.
    pub pool_id: Uuid,
    /// The student, when not the caller.
    pub student_id: Option<Uuid>,
    /// For a shared pool: the organization the test is taken in.
    pub organization_id: Option<Uuid>,
    /// Effective configuration.
    pub config: TestConfig,
}

/// Starts a test: prior from the student's history in the test's organization
/// (else N(0, 1)), first item by the selector. A test belongs to its pool's
/// organization; on a shared pool, to the one asked for, else the student's
/// only one, else none. Who may start what is decided in the same statement
/// that reads the pool.
pub async fn start(app: &App, caller: &Caller, req: StartRequest) -> Result<Started, Error> {
    let student = req.student_id.unwrap_or(caller.user_id);
    let ctx = records::start_context(
        app.db(),
        req.pool_id,
        student,
        req.organization_id,
        caller.user_id,
    )
    .await?
    .ok_or(Error::PoolNotFound(req.pool_id))?;
    may_start(caller, &req, student, &ctx)?;
    let org_id = ctx.standing.org;
    let prior = FromProficiency {
        history: ctx.history,
    }
    .start()
    .prior;
    let bank = pools::bank(app, req.pool_id, ctx.pool_version).await?;
    req.config.check_against(&bank)?;
    let seed: u64 = rand::random();
    let cat = req.config.engine(prior, &bank);
    let step = cat.step(&bank.bank, &[], &[], seed);
    let first = step.next.ok_or(Error::EmptyPool(req.pool_id))?;
    let id = Uuid::new_v4();
    let config_json = serde_json::to_value(&req.config).expect("config serialises");
    records::insert(
        app.db(),
        &records::NewTest {
            id,
            pool_id: req.pool_id,
            pool_version: ctx.pool_version,
            student_id: Some(student),
            org_id,
            config: &config_json,
            seed,
            prior,
            first_question: &bank.ids[first],
        },
    )
    .await?;
    let state = LiveState {
        seq: 0,
        pool_id: req.pool_id,
        pool_version: ctx.pool_version,
        student_id: Some(student),
        seed,
        prior: (prior.mean, prior.sd),
        theta: step.estimate.theta,
        se: step.estimate.se,
        items: vec![],
        answers: vec![],
        current: Some(first as u32),
        config: req.config.clone(),
    };
    // PostgreSQL has the test; without Redis it is served from there until Redis is back.
    let body = state.body();
    let (written, _) = tokio::join!(
        records::put_state(app.redis(), id, 0, &body, app.config().test_state_ttl),
        history_changed(app, Some(student), false)
    );
    if let Err(e) = written {
        tracing::warn!(test = %id, error = %e, "live state not written at start");
    }
    Ok(Started {
        test_id: id,
        organization_id: org_id,
        status: TestStatus::Active.as_str(),
        question: question(app, &bank, first, 1).await?,
        proficiency: Proficiency {
            theta: step.estimate.theta,
            se: step.estimate.se,
            concepts: BTreeMap::new(),
        },
        items_answered: 0,
        config: req.config,
    })
}

/// Whether `caller` may start this test: the pool must be theirs to use (its
/// organization's, or shared), the organization asked for one they belong to,
/// and a student named other than themselves one they teach or administer.
fn may_start(
    caller: &Caller,
    req: &StartRequest,
    student: Uuid,
    ctx: &records::StartContext,
) -> Result<(), Error> {
    let standing = &ctx.standing;
    if ctx.pool_org.is_some() && standing.member().is_err() {
        return Err(Error::PoolNotFound(req.pool_id));
    }
    if let Some(org) = req.organization_id {
        if ctx.pool_org.is_some_and(|p| p != org) {
            return Err(Error::InvalidStart(format!(
                "pool {} belongs to an organization of its own; organization_id is for shared pools",
                req.pool_id
            )));
        }
        if standing.member().is_err() {
            return Err(Error::OrgNotFound(org));
        }
    }
    if ctx.pool_org.is_none() && req.organization_id.is_none() && ctx.student_orgs > 1 {
        return Err(Error::InvalidStart(format!(
            "pool {} is shared and the student belongs to {} organizations: say which with organization_id",
            req.pool_id, ctx.student_orgs
        )));
    }
    if student == caller.user_id {
        return Ok(());
    }
    let staff = standing.platform_admin || standing.org_role.is_some_and(OrgRole::is_staff);
    if !staff {
        return Err(Error::StartForOthers);
    }
    let sees = standing.platform_admin
        || standing.teaches_student
        || (standing.org_role == Some(OrgRole::OrgAdmin) && ctx.student_member);
    if !ctx.student_exists || !sees {
        return Err(Error::StudentNotFound(student));
    }
    if standing.org.is_some() && !ctx.student_member {
        return Err(Error::InvalidStart(format!(
            "user {student} is not a member of the test's organization"
        )));
    }
    Ok(())
}

/// A student's cached history is out of date once PostgreSQL changed one of
/// their tests, and their proficiency too when a test `ended` (sent alongside
/// the Redis write that follows).
async fn history_changed(app: &App, student: Option<Uuid>, ended: bool) {
    if let Some(student) = student {
        let changed = [Namespace::History(student), Namespace::Proficiency(student)];
        let n = if ended { 2 } else { 1 };
        app.cache().invalidate(&changed[..n]).await;
    }
}

/// Question `index` of `bank` as served at `position`.
async fn question(
    app: &App,
    bank: &PoolBank,
    index: usize,
    position: u32,
) -> Result<Question, Error> {
    let text = pools::question(app, &bank.ids[index]).await?;
    Ok(view::question(&text, position))
}

/// Whether `who` may `use_` test `id`, owned by `owner`: no I/O for its
/// student; anyone else's standing in the test's organization is read. A test
/// the caller may not know about is reported as not found.
async fn allowed(
    app: &App,
    who: &Caller,
    id: Uuid,
    owner: Option<Uuid>,
    use_: Use,
) -> Result<(), Error> {
    scope::student_thing(app, who.user_id, OrgOf::Test(id), owner, use_)
        .await?
        .map_err(|denied| match denied {
            Denied::Hidden => Error::TestNotFound(id),
            Denied::Forbidden => Error::Forbidden(id),
        })
}

/// A test's live state as one request sees it.
struct Live {
    state: LiveState,
    /// The submission lock, when one was asked for and Redis gave it.
    lock: Option<Lock>,
    /// Whether the state came through Redis (false: Redis unreachable, read from PostgreSQL).
    via_redis: bool,
}

/// Reads the live state, sliding its TTL, and takes `lock` in the same round
/// trip. When the state is gone (expired, evicted, flushed), unreadable, or known
/// to be behind, it is rebuilt from PostgreSQL, which holds everything it needs;
/// when Redis is unreachable the test is served from PostgreSQL alone. Only
/// the test's student (or an admin) gets it; the check comes before any
/// status, so others cannot tell an ended test from none.
async fn live(app: &App, id: Uuid, who: &Caller, lock: Option<Lock>) -> Result<Live, Error> {
    let redis = app.redis();
    let ttl = app.config().test_state_ttl;
    let fetched = match &lock {
        Some(lock) => records::begin_submit(redis, id, lock, ttl).await,
        None => records::touch_state(redis, id, ttl)
            .await
            .map(|stored| (true, stored)),
    };
    let raw = match fetched {
        Ok((true, raw)) => raw,
        Ok((false, _)) => {
            let question = lock.map(|l| l.question_id).unwrap_or_default();
            return Err(Error::SubmitInProgress(question));
        }
        Err(e) if e.is_redis() => {
            tracing::warn!(test = %id, error = %e, "Redis unavailable; serving the test from PostgreSQL");
            let replay = Replay::load(app, id).await?;
            allowed(app, who, id, replay.record.student_id, Use::Act).await?;
            return Ok(Live {
                state: active_state(&replay)?,
                lock: None,
                via_redis: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let state = match raw {
        None => resync(app, id, who, None).await,
        Some(stored) => {
            let decoded = if app.stale_tests().contains(id) {
                Err("behind PostgreSQL".to_owned())
            } else {
                // Unreadable e.g. when written by an older release: PostgreSQL has what it held.
                LiveState::decode(&stored)
            };
            match decoded {
                Ok(state) => allowed(app, who, id, state.student_id, Use::Act)
                    .await
                    .map(|()| state),
                Err(why) => {
                    tracing::warn!(test = %id, why, "live state unusable; rebuilding it");
                    resync(app, id, who, stored.seq()).await
                }
            }
        }
    };
    match state {
        Ok(state) => Ok(Live {
            state,
            lock,
            via_redis: true,
        }),
        Err(e) => {
            if let Some(lock) = &lock {
                release(app, id, lock).await;
            }
            Err(e)
        }
    }
}

/// The state of an active test as PostgreSQL has it.
fn active_state(replay: &Replay) -> Result<LiveState, Error> {
    match replay.record.status {
        TestStatus::Active => LiveState::rebuild(replay),
        status => Err(Error::NotActive(status)),
    }
}

/// Rebuilds the state of an active test from PostgreSQL and writes it to Redis.
async fn resync(app: &App, id: Uuid, who: &Caller, over: Option<u32>) -> Result<LiveState, Error> {
    let replay = Replay::load(app, id).await?;
    allowed(app, who, id, replay.record.student_id, Use::Act).await?;
    let state = active_state(&replay)?;
    store_rebuilt(app, &replay, &state, over).await;
    Ok(state)
}

/// Writes a state rebuilt from PostgreSQL: over the state at `over`
/// (compare-and-set, so a newer writer wins), or where there is none (SET NX,
/// so racing rebuilds agree). A failed write only means another rebuild later.
async fn store_rebuilt(app: &App, replay: &Replay, state: &LiveState, over: Option<u32>) {
    let (id, redis) = (replay.record.id, app.redis());
    let (body, ttl) = (state.body(), state::ttl_for(app, &replay.record));
    let written = match over {
        Some(seen) => records::replace_state(redis, id, seen, (state.seq, &body), ttl, None)
            .await
            .map(|_| ()),
        None => records::put_state(redis, id, state.seq, &body, ttl)
            .await
            .map(|_| ()),
    };
    match written {
        Ok(()) => app.stale_tests().clear(id),
        Err(e) => tracing::warn!(test = %id, error = %e, "rebuilt live state not written"),
    }
    tracing::info!(test = %id, seq = state.seq, "live state rebuilt from PostgreSQL");
}

/// After a refusal against the Redis state seen at `seen_seq`: an ended test is
/// reported as such; when Redis is behind PostgreSQL (a Redis write lost after a
/// commit, or a race just lost), the state is replaced by one rebuilt from
/// PostgreSQL and returned.
async fn refresh_if_stale(app: &App, id: Uuid, seen_seq: u32) -> Result<Option<LiveState>, Error> {
    let replay = Replay::load(app, id).await?;
    let status = replay.record.status;
    if matches!(status, TestStatus::Ended | TestStatus::Abandoned) {
        return Err(Error::NotActive(status));
    }
    if replay.record.items_answered as u32 <= seen_seq {
        return Ok(None);
    }
    let fresh = LiveState::rebuild(&replay)?;
    store_rebuilt(app, &replay, &fresh, Some(seen_seq)).await;
    Ok(Some(fresh))
}

async fn release(app: &App, id: Uuid, lock: &Lock) {
    if let Err(e) = records::release(app.redis(), id, lock).await {
        // It expires by itself within seconds.
        tracing::warn!(test = %id, error = %e, "submission lock not released");
    }
}

/// The question currently served.
pub async fn current_question(app: &App, id: Uuid, who: &Caller) -> Result<Question, Error> {
    let state = live(app, id, who, None).await?.state;
    let current = state
        .current
        .ok_or(Error::NotActive(TestStatus::Completed))?;
    let bank = pools::bank(app, state.pool_id, state.pool_version).await?;
    question(app, &bank, current as usize, state.seq + 1).await
}

/// Records one answer to the question being served, exactly once: a Redis lock
/// turns a concurrent duplicate away fast, PostgreSQL's conditional update and
/// unique constraints make sure of it.
pub async fn submit(
    app: &App,
    id: Uuid,
    who: &Caller,
    question_id: &str,
    response: &str,
) -> Result<Submitted, Error> {
    let live = live(app, id, who, Some(Lock::new(question_id))).await?;
    let (lock, via_redis, seen_seq) = (live.lock.clone(), live.via_redis, live.state.seq);
    let mut result = record(app, id, live, question_id, response).await;
    // Refused against what Redis holds, which may be behind PostgreSQL: check, and
    // retry once on the state rebuilt from PostgreSQL.
    if via_redis
        && matches!(
            result,
            Err(Error::QuestionNotServed(_) | Error::AlreadyAnswered(_))
        )
    {
        result = match refresh_if_stale(app, id, seen_seq).await {
            Ok(Some(fresh)) => {
                let live = Live {
                    state: fresh,
                    lock: lock.clone(),
                    via_redis,
                };
                record(app, id, live, question_id, response).await
            }
            Ok(None) => result,
            Err(e) => Err(e),
        };
    }
    // On success the state write released it.
    if result.is_err()
        && let Some(lock) = &lock
    {
        release(app, id, lock).await;
    }
    result
}

async fn record(
    app: &App,
    id: Uuid,
    live: Live,
    question_id: &str,
    response: &str,
) -> Result<Submitted, Error> {
    let mut state = live.state;
    let current = state
        .current
        .ok_or(Error::NotActive(TestStatus::Completed))? as usize;
    let bank = pools::bank(app, state.pool_id, state.pool_version).await?;
    match bank.index_of(question_id) {
        Some(i) if i == current => {}
        Some(i) if state.items.contains(&(i as u32)) => {
            return Err(Error::AlreadyAnswered(question_id.into()));
        }
        _ => return Err(Error::QuestionNotServed(question_id.into())),
    }
    let served = pools::question(app, question_id).await?;
    if !served.options.iter().any(|o| o == response) {
        return Err(Error::UnknownOption {
            question: question_id.into(),
            response: response.into(),
        });
    }
    let keys = pools::answer_key(app, state.pool_id, state.pool_version).await?;
    let correct = keys.get(current).is_some_and(|key| key == response);
    let before = Estimate {
        theta: state.theta,
        se: state.se,
    };
    let mut items = state.items();
    items.push(current);
    state.answers.push(correct);
    let cat = state.config.engine(state.prior(), &bank);
    let step = cat.step(&bank.bank, &items, &state.answers, state.seed);
    let status = if step.next.is_some() {
        TestStatus::Active
    } else {
        TestStatus::Completed
    };
    let answer = Answer {
        question_id,
        response,
        correct,
        before,
        after: step.estimate,
        status,
        next_question: step.next.map(|i| bank.ids[i].as_str()),
    };
    if !records::record_answer(app.db(), id, state.seq as i32, &answer).await? {
        // Lost a race, to a concurrent submit or to `end`: `submit` reads which from PostgreSQL.
        return Err(Error::AlreadyAnswered(question_id.into()));
    }
    let expected_seq = state.seq;
    state.seq += 1;
    state.items.push(current as u32);
    state.theta = step.estimate.theta;
    state.se = step.estimate.se;
    state.current = step.next.map(|i| i as u32);
    // PostgreSQL already holds the answer; a Redis write that fails only costs a rebuild later.
    let body = state.body();
    let (written, _) = tokio::join!(
        records::replace_state(
            app.redis(),
            id,
            expected_seq,
            (state.seq, &body),
            app.config().test_state_ttl,
            live.lock.as_ref(),
        ),
        history_changed(app, state.student_id, false)
    );
    if !matches!(written, Ok(CasOutcome::Written)) {
        app.stale_tests().mark(id);
        if live.via_redis {
            tracing::warn!(test = %id, outcome = ?written, "live state not replaced after a recorded answer");
        }
    }
    let next_question = match step.next {
        Some(i) => Some(question(app, &bank, i, state.seq + 1).await?),
        None => None,
    };
    Ok(Submitted {
        correct,
        proficiency: proficiency(
            &bank,
            cat.estimator.as_ref(),
            step.estimate,
            &items,
            &state.answers,
        ),
        items_answered: state.seq,
        status: status.as_str(),
        next_question,
        stop_reason: step.stop.map(StopReason::name),
    })
}

/// Ends a test: final results and long-term proficiency to PostgreSQL, live state
/// deleted. Ending an ended test returns the same results.
pub async fn end(app: &App, id: Uuid, who: &Caller) -> Result<Ended, Error> {
    // A submit landing between our read and our write moves `items_answered`; read again then.
    for _ in 0..3 {
        let mut replay = Replay::load(app, id).await?;
        allowed(app, who, id, replay.record.student_id, Use::Act).await?;
        match replay.record.status {
            TestStatus::Ended => return Ok(replay.ended(replay.proficiency()?)),
            TestStatus::Abandoned => return Err(Error::NotActive(TestStatus::Abandoned)),
            TestStatus::Active | TestStatus::Completed => {}
        }
        let p = replay.proficiency()?;
        let concepts: Vec<(String, Estimate, usize)> = p
            .concepts
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    Estimate {
                        theta: c.theta,
                        se: c.se,
                    },
                    c.n,
                )
            })
            .collect();
        let overall = Estimate {
            theta: p.theta,
            se: p.se,
        };
        let finished = records::Final {
            overall,
            concepts: &concepts,
        };
        if let Some(ended_at) = records::finish(app.db(), &replay.record, &finished).await? {
            let (deleted, _) = tokio::join!(
                records::delete_state(app.redis(), id),
                history_changed(app, replay.record.student_id, true)
            );
            if let Err(e) = deleted {
                // The state expires on its own; PostgreSQL already refuses answers to an ended test.
                app.stale_tests().mark(id);
                tracing::warn!(test = %id, error = %e, "live state not deleted at end");
            }
            replay.record.ended_at = Some(ended_at);
            return Ok(replay.ended(p));
        }
    }
    Err(Error::Contended(id))
}

/// A test and its responses, from PostgreSQL: for its student, teachers and admins.
pub async fn report(app: &App, id: Uuid, who: &Caller) -> Result<Report, Error> {
    let replay = Replay::load(app, id).await?;
    allowed(app, who, id, replay.record.student_id, Use::Read).await?;
    let proficiency = replay.proficiency()?;
    let Replay {
        record: t,
        config,
        responses,
        ..
    } = replay;
    Ok(Report {
        classification: classification(&config, &proficiency),
        test_id: t.id,
        pool_id: t.pool_id,
        pool_version: t.pool_version,
        student_id: t.student_id,
        status: t.status.as_str(),
        config,
        proficiency,
        items_answered: t.items_answered,
        correct_responses: t.correct_count,
        started_at: t.started_at,
        ended_at: t.ended_at,
        responses: responses
            .into_iter()
            .map(|r| ResponseView {
                seq: r.seq,
                question_id: r.question_id,
                response: r.response,
                correct: r.correct,
                theta: r.after.theta,
                se: r.after.se,
                answered_at: r.answered_at,
            })
            .collect(),
    })
}
