//! The adaptive-test loop: the engine decides, PostgreSQL records first,
//! Redis holds the hot state after. Keys stay in process memory.

pub mod admin;
mod config;
pub mod design;
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
use crate::store::assessments;
use crate::store::pools::PoolBank;
use crate::store::tests::{self as records, Answer, CasOutcome, Lock, TestStatus};
use design::Mode;
use lectern_engine::{Estimate, FromProficiency, Initializer, StopReason};
use state::{LiveState, Replay, Serving};
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
    /// Only staff choose a test's design: a student may not send `config`.
    #[error(
        "a test's configuration is chosen by staff; leave config out (or start from an assignment)"
    )]
    DesignIsStaffs,
    /// No assignment with that id the caller may see.
    #[error("no assignment with id {0}")]
    AssignmentNotFound(Uuid),
    /// The caller is in the assignment's organization but not one of its students.
    #[error("assignment {0} is not assigned to you")]
    NotAssigned(Uuid),
    /// The assignment is not open now.
    #[error("assignment {id} is open from {opens_at} to {closes_at}; it is now {now}")]
    OutsideWindow {
        /// The assignment.
        id: Uuid,
        /// Opening time (RFC 3339).
        opens_at: String,
        /// Closing time (RFC 3339).
        closes_at: String,
        /// The server's clock (RFC 3339).
        now: String,
    },
    /// Every attempt allowed is used.
    #[error("all {0} attempts allowed at this assignment are used")]
    NoAttemptsLeft(i32),
    /// An attempt is running: finish it first.
    #[error("attempt test {0} is still running; end it before starting another")]
    AttemptRunning(Uuid),
    /// A concurrent start took this attempt.
    #[error("another start of this attempt won; list your assignments to see it")]
    AttemptTaken,
    /// The test's deadline passed: nothing after it is recorded; the test ended as timed out.
    #[error(
        "the deadline of test {0} has passed: the test ended as timed_out, and nothing sent after the deadline is recorded"
    )]
    DeadlinePassed(Uuid),
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
    /// The configuration sent (staff only); `None`: the defaults.
    pub config: Option<TestConfig>,
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
    // A design sent here is written now: the pool must have its pretest items.
    let designed = req.config.is_some();
    let config = match req.config {
        Some(config) => config,
        None => TestConfig::resolve(TestConfigInput::default())?,
    };
    let org_id = ctx.standing.org;
    let prior = FromProficiency {
        history: ctx.history,
    }
    .start()
    .prior;
    let bank = pools::bank(app, req.pool_id, ctx.pool_version).await?;
    config.check_against(&bank)?;
    if designed {
        config.check_pretest_supply(&bank)?;
    }
    let first = first_step(&config, prior, &bank, req.pool_id)?;
    let id = Uuid::new_v4();
    let config_json = serde_json::to_value(&config).expect("config serialises");
    records::insert(
        app.db(),
        &records::NewTest {
            id,
            pool_id: req.pool_id,
            pool_version: ctx.pool_version,
            student_id: Some(student),
            org_id,
            config: &config_json,
            seed: first.seed,
            prior,
            first_question: &bank.ids[first.index],
        },
    )
    .await?;
    let launch = Launch {
        id,
        pool_id: req.pool_id,
        pool_version: ctx.pool_version,
        org_id,
        student,
        prior,
        config,
        deadline: None,
        assignment: None,
    };
    launch.go(app, &bank, first).await
}

/// The first step of a new test: its seed, first item and prior estimate.
struct First {
    seed: u64,
    index: usize,
    estimate: Estimate,
}

fn first_step(
    config: &TestConfig,
    prior: lectern_engine::NormalPrior,
    bank: &PoolBank,
    pool_id: Uuid,
) -> Result<First, Error> {
    let seed: u64 = rand::random();
    let step = config.engine(prior, bank).step(&bank.bank, &[], &[], seed);
    let index = step.next.ok_or(Error::EmptyPool(pool_id))?;
    Ok(First {
        seed,
        index,
        estimate: step.estimate,
    })
}

/// A test PostgreSQL just recorded, to put in Redis and hand back.
struct Launch {
    id: Uuid,
    pool_id: Uuid,
    pool_version: i32,
    org_id: Option<Uuid>,
    student: Uuid,
    prior: lectern_engine::NormalPrior,
    config: TestConfig,
    deadline: Option<time::OffsetDateTime>,
    /// The assignment and attempt.
    assignment: Option<(Uuid, i32)>,
}

impl Launch {
    async fn go(self, app: &App, bank: &PoolBank, first: First) -> Result<Started, Error> {
        let state = LiveState {
            seq: 0,
            pool_id: self.pool_id,
            pool_version: self.pool_version,
            student_id: Some(self.student),
            seed: first.seed,
            prior: (self.prior.mean, self.prior.sd),
            theta: first.estimate.theta,
            se: first.estimate.se,
            items: vec![],
            answers: vec![],
            current: Some(first.index as u32),
            deadline: self.deadline.map(state::millis),
            config: self.config.clone(),
            pretest_answers: vec![],
        };
        // PostgreSQL has the test; without Redis it is served from there until Redis is back.
        let body = state.body();
        let (written, _) = tokio::join!(
            records::put_state(app.redis(), self.id, 0, &body, app.config().test_state_ttl),
            history_changed(app, Some(self.student), false)
        );
        if let Err(e) = written {
            tracing::warn!(test = %self.id, error = %e, "live state not written at start");
        }
        let exam = self.config.mode == Mode::Exam;
        Ok(Started {
            test_id: self.id,
            organization_id: self.org_id,
            assignment_id: self.assignment.map(|a| a.0),
            attempt: self.assignment.map(|a| a.1),
            deadline: self.deadline,
            status: TestStatus::Active.as_str(),
            // Position 1 is never a pretest item's.
            question: question(app, bank, Serving::Item(first.index), 1).await?,
            proficiency: (!exam).then(|| Proficiency {
                theta: first.estimate.theta,
                se: first.estimate.se,
                concepts: BTreeMap::new(),
            }),
            items_answered: 0,
            config: self.config,
        })
    }
}

/// The response `start` gave for test `id`, again, from PostgreSQL (a retry
/// with the same `Idempotency-Key` after Redis forgot the first response):
/// the first item and the start estimate are the engine's first step again
/// (deterministic in the seed recorded), and the rest is the test's record.
pub async fn started_again(app: &App, who: &Caller, id: Uuid) -> Result<Started, Error> {
    let replay = Replay::load(app, id).await?;
    // Whoever may start a test may read it (a teacher starting one for a student).
    allowed(app, who, id, replay.record.student_id, Use::Read).await?;
    let t = &replay.record;
    let bank = &replay.bank;
    let step = replay
        .config
        .engine(t.prior, bank)
        .step(&bank.bank, &[], &[], t.seed);
    let index = step.next.ok_or(Error::EmptyPool(t.pool_id))?;
    let exam = replay.config.mode == Mode::Exam;
    Ok(Started {
        test_id: id,
        organization_id: t.org_id,
        assignment_id: t.assignment_id,
        attempt: t.attempt,
        deadline: t.deadline,
        status: TestStatus::Active.as_str(),
        question: question(app, bank, Serving::Item(index), 1).await?,
        proficiency: (!exam).then(|| Proficiency {
            theta: step.estimate.theta,
            se: step.estimate.se,
            concepts: BTreeMap::new(),
        }),
        items_answered: 0,
        config: replay.config.clone(),
    })
}

/// Starts the caller's next attempt at an assignment: the design is the
/// assessment's, the window, attempts and running attempt are checked on one
/// read, and the attempt is counted by the guarded insert that records it (of
/// any number of concurrent starts, one gets each attempt).
pub async fn start_attempt(app: &App, caller: &Caller, id: Uuid) -> Result<Started, Error> {
    let student = caller.user_id;
    let ctx = assessments::attempt_context(app.db(), id, student)
        .await?
        .ok_or(Error::AssignmentNotFound(id))?;
    if !ctx.assigned {
        return Err(if ctx.member {
            Error::NotAssigned(id)
        } else {
            Error::AssignmentNotFound(id)
        });
    }
    let g = &ctx.assignment;
    if ctx.now < g.opens_at || ctx.now >= g.closes_at {
        let rfc = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        return Err(Error::OutsideWindow {
            id,
            opens_at: rfc(g.opens_at),
            closes_at: rfc(g.closes_at),
            now: rfc(ctx.now),
        });
    }
    if let Some(running) = ctx.running {
        return Err(Error::AttemptRunning(running));
    }
    if ctx.attempts_used >= i64::from(g.max_attempts) {
        return Err(Error::NoAttemptsLeft(g.max_attempts));
    }
    let config: TestConfig = serde_json::from_value(ctx.design.clone()).map_err(|e| {
        Error::Store(StoreError::Corrupt(format!(
            "design of assessment {}: {e}",
            g.assessment_id
        )))
    })?;
    let prior = FromProficiency {
        history: ctx.history,
    }
    .start()
    .prior;
    let bank = pools::bank(app, ctx.pool_id, ctx.pool_version).await?;
    // A design following the pool's latest version meets each new version here.
    config.check_against(&bank)?;
    let first = first_step(&config, prior, &bank, ctx.pool_id)?;
    let test_id = Uuid::new_v4();
    let attempt = ctx.attempts_used as i32 + 1;
    let config_json = serde_json::to_value(&config).expect("config serialises");
    let seconds = config.time_limit_s.map(|s| s + i64::from(ctx.extra_time_s));
    let deadline = assessments::insert_attempt(
        app.db(),
        &assessments::NewAttempt {
            id: test_id,
            assignment: g,
            pool_id: ctx.pool_id,
            pool_version: ctx.pool_version,
            student_id: student,
            attempt,
            config: &config_json,
            seed: first.seed,
            prior,
            first_question: &bank.ids[first.index],
            seconds,
        },
    )
    .await?
    .ok_or(Error::AttemptTaken)?;
    let launch = Launch {
        id: test_id,
        pool_id: ctx.pool_id,
        pool_version: ctx.pool_version,
        org_id: Some(g.org_id),
        student,
        prior,
        config,
        deadline,
        assignment: Some((id, attempt)),
    };
    launch.go(app, &bank, first).await
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
    let staff = standing.platform_admin || standing.org_role.is_some_and(OrgRole::is_staff);
    if req.config.is_some() && !staff {
        return Err(Error::DesignIsStaffs);
    }
    if student == caller.user_id {
        return Ok(());
    }
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

/// A question of `bank` as served at `position`: an operational and a
/// pretest one alike.
async fn question(
    app: &App,
    bank: &PoolBank,
    serving: Serving,
    position: u32,
) -> Result<Question, Error> {
    let text = pools::question(app, serving.id(bank)).await?;
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
    if matches!(
        status,
        TestStatus::Ended | TestStatus::Abandoned | TestStatus::TimedOut
    ) {
        return Err(Error::NotActive(status));
    }
    if replay.overdue() {
        return Err(time_out(app, id).await);
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
    if state.overdue() {
        return Err(time_out(app, id).await);
    }
    let bank = pools::bank(app, state.pool_id, state.pool_version).await?;
    let serving = state
        .serving(&state.plan(&bank))
        .ok_or(Error::NotActive(TestStatus::Completed))?;
    question(app, &bank, serving, state.seq + 1).await
}

/// Records one answer to the question being served, exactly once: a Redis lock
/// turns a concurrent duplicate away fast, PostgreSQL's conditional update and
/// unique constraints make sure of it. A retry of the latest recorded answer
/// (same question, same response) gets the original result again (see
/// [`repeated`]); a different response to an answered question stays refused.
pub async fn submit(
    app: &App,
    id: Uuid,
    who: &Caller,
    question_id: &str,
    response: &str,
) -> Result<Submitted, Error> {
    match answer(app, id, who, question_id, response).await {
        Err(e @ (Error::AlreadyAnswered(_) | Error::NotActive(TestStatus::Completed))) => {
            match repeated(app, id, who, question_id, response).await? {
                Some(original) => Ok(original),
                None => Err(e),
            }
        }
        other => other,
    }
}

/// The original result of a submit that PostgreSQL has already recorded, when
/// `question_id`/`response` is that submit repeated: the test's latest recorded
/// response, with the same response, while the test is active or completed (a
/// test ended, timed out or abandoned since is over: `None`, and the caller
/// keeps its refusal). Recomputed from PostgreSQL, which is the source of
/// truth (nothing of the first response is kept anywhere else): the answer's
/// `correct`/`score`, θ/SE and per-concept estimates after it, the count, the
/// status, the question served next and the stop reason, under the same
/// exam/practice rules as the first time. An answer followed by later ones is
/// not a retry (its result was delivered, or its client moved on): `None`.
async fn repeated(
    app: &App,
    id: Uuid,
    who: &Caller,
    question_id: &str,
    response: &str,
) -> Result<Option<Submitted>, Error> {
    let replay = Replay::load(app, id).await?;
    allowed(app, who, id, replay.record.student_id, Use::Act).await?;
    let status = replay.record.status;
    if !matches!(status, TestStatus::Active | TestStatus::Completed) {
        return Ok(None);
    }
    let Some(last) = replay.responses.last() else {
        return Ok(None);
    };
    if last.question_id != question_id
        || last.response != response
        || last.seq != replay.record.items_answered
    {
        return Ok(None);
    }
    let state = LiveState::rebuild(&replay)?;
    let bank = &replay.bank;
    let plan = state.plan(bank);
    let items = state.items();
    let cat = state.config.engine(state.prior(), bank);
    let after = Estimate {
        theta: state.theta,
        se: state.se,
    };
    // Only an operational answer can have fired the stop rule; the engine is
    // deterministic in (items, answers, seed), so it fires the same way again.
    let stop = match (last.pretest, state.current) {
        (false, None) => {
            cat.step(&bank.bank, &items, &state.answers, state.seed)
                .stop
        }
        _ => None,
    };
    let next_question = match state.serving(&plan) {
        Some(next) => Some(question(app, bank, next, state.seq + 1).await?),
        None => None,
    };
    let feedback = state.config.mode == Mode::Practice;
    Ok(Some(Submitted {
        correct: feedback.then_some(last.correct),
        score: feedback.then_some(last.score),
        proficiency: feedback
            .then(|| proficiency(bank, cat.estimator.as_ref(), after, &items, &state.answers)),
        items_answered: state.seq,
        status: status.as_str(),
        next_question,
        stop_reason: stop.filter(|_| feedback).map(StopReason::name),
    }))
}

/// One attempt at recording an answer, the first time.
async fn answer(
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
    if state.overdue() {
        return Err(time_out(app, id).await);
    }
    let bank = pools::bank(app, state.pool_id, state.pool_version).await?;
    let plan = state.plan(&bank);
    let serving = state
        .serving(&plan)
        .ok_or(Error::NotActive(TestStatus::Completed))?;
    if serving.id(&bank) != question_id {
        return Err(if state.answered(&bank, &plan, question_id) {
            Error::AlreadyAnswered(question_id.into())
        } else {
            Error::QuestionNotServed(question_id.into())
        });
    }
    let served = pools::question(app, question_id).await?;
    let option = served
        .options
        .iter()
        .position(|o| o == response)
        .ok_or_else(|| Error::UnknownOption {
            question: question_id.into(),
            response: response.into(),
        })?;
    let keys = pools::answer_key(app, state.pool_id, state.pool_version).await?;
    let (scores, top) = match serving {
        Serving::Item(i) => (keys.items.get(i), bank.bank.max_score(i)),
        Serving::Pretest(j) => keys
            .pretest
            .get(j)
            .map_or((None, 0), |k| (Some(&k.scores), k.top)),
    };
    let score = scores
        .and_then(|scores| scores.get(option))
        .copied()
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "question {question_id:?} has no score for option {option}"
            ))
        })?;
    let correct = score == top;
    let before = Estimate {
        theta: state.theta,
        se: state.se,
    };
    let mut items = state.items();
    let mut answers = state.answers.clone();
    let cat = state.config.engine(state.prior(), &bank);
    // A pretest answer is recorded and nothing else: the engine never sees it,
    // so θ, SE, the stop rule and the next operational item stay as they were.
    let step = match serving {
        Serving::Item(current) => {
            items.push(current);
            answers.push(score);
            cat.step(&bank.bank, &items, &answers, state.seed)
        }
        Serving::Pretest(_) => lectern_engine::Step {
            estimate: before,
            next: state.current.map(|i| i as usize),
            stop: None,
        },
    };
    let status = if step.next.is_some() {
        TestStatus::Active
    } else {
        TestStatus::Completed
    };
    let answer = Answer {
        question_id,
        response,
        score,
        correct,
        pretest: matches!(serving, Serving::Pretest(_)),
        before,
        after: step.estimate,
        status,
        next_question: step.next.map(|i| bank.ids[i].as_str()),
    };
    if !records::record_answer(app.db(), id, state.seq as i32, &answer).await? {
        // Lost a race, to a concurrent submit or to `end`: `submit` reads which from PostgreSQL.
        return Err(Error::AlreadyAnswered(question_id.into()));
    }
    if status == TestStatus::Completed {
        // The completing answer enqueued `test.completed`.
        crate::services::events::after_write(app).await;
    }
    let expected_seq = state.seq;
    state.seq += 1;
    match serving {
        Serving::Item(current) => {
            state.items.push(current as u32);
            state.answers.push(score);
        }
        Serving::Pretest(_) => state.pretest_answers.push(score),
    }
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
    // The next position may be a pretest item's, after an answer of either kind.
    let next_question = match state.serving(&plan) {
        Some(next) => Some(question(app, &bank, next, state.seq + 1).await?),
        None => None,
    };
    // An exam tells the examinee nothing about their answers while it runs.
    let feedback = state.config.mode == Mode::Practice;
    Ok(Submitted {
        correct: feedback.then_some(correct),
        score: feedback.then_some(score),
        proficiency: feedback.then(|| {
            proficiency(
                &bank,
                cat.estimator.as_ref(),
                step.estimate,
                &items,
                &answers,
            )
        }),
        items_answered: state.seq,
        status: status.as_str(),
        next_question,
        stop_reason: step.stop.filter(|_| feedback).map(StopReason::name),
    })
}

/// Ends a test: final results and long-term proficiency to PostgreSQL, live state
/// deleted. Ending an ended test returns the same results; a test whose
/// deadline passed ends as timed out.
pub async fn end(app: &App, id: Uuid, who: &Caller) -> Result<Ended, Error> {
    close(app, id, Some(who), TestStatus::Ended).await
}

/// Ends a test whose deadline passed as timed out, with the answers given in
/// time, and says so; whatever else goes wrong is returned instead.
async fn time_out(app: &App, id: Uuid) -> Error {
    let closed = close(app, id, None, TestStatus::TimedOut).await;
    if closed.is_ok() {
        crate::services::events::after_write(app).await;
    }
    match closed {
        Ok(_) | Err(Error::NotActive(TestStatus::TimedOut)) => Error::DeadlinePassed(id),
        Err(e) => e,
    }
}

/// Ends test `id` as `status` (ended, or timed out) for `who` (`None`: the
/// service itself). An exam's results reach the student's long-term
/// proficiency once released.
async fn close(
    app: &App,
    id: Uuid,
    who: Option<&Caller>,
    status: TestStatus,
) -> Result<Ended, Error> {
    // A submit landing between our read and our write moves `items_answered`; read again then.
    for _ in 0..3 {
        let mut replay = Replay::load(app, id).await?;
        if let Some(who) = who {
            allowed(app, who, id, replay.record.student_id, Use::Act).await?;
        }
        match replay.record.status {
            s if s.is_final() && (who.is_some() || s == status) => {
                return Ok(replay.ended(replay.proficiency()?, who));
            }
            TestStatus::Active | TestStatus::Completed => {}
            s => return Err(Error::NotActive(s)),
        }
        // Ending after the deadline is timing out.
        let status = if replay.overdue() {
            TestStatus::TimedOut
        } else {
            status
        };
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
        let apply = replay.config.mode == Mode::Practice || replay.record.released;
        let closed = records::finish(app.db(), &replay.record, &finished, status, apply).await?;
        if let Some(ended_at) = closed {
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
            replay.record.status = status;
            // Its events are enqueued; the sweeper nudges once for all it closes.
            if who.is_some() {
                crate::services::events::after_write(app).await;
            }
            return Ok(replay.ended(p, who));
        }
    }
    Err(Error::Contended(id))
}

/// Ends every test whose deadline passed (the sweeper's other half); returns how many.
pub async fn time_out_overdue(app: &App) -> Result<u64, StoreError> {
    let mut closed = 0;
    for id in crate::store::sweep::overdue(app.db(), 500).await? {
        match close(app, id, None, TestStatus::TimedOut).await {
            Ok(_) => closed += 1,
            Err(Error::Store(e)) => return Err(e),
            // Ended meanwhile by its student, or another sweep.
            Err(e) => tracing::info!(test = %id, error = %e, "overdue test not timed out"),
        }
    }
    Ok(closed)
}

/// A test and its responses, from PostgreSQL: for its student, teachers and
/// admins (an exam's student sees no results before their release).
pub async fn report(app: &App, id: Uuid, who: &Caller) -> Result<Report, Error> {
    let replay = Replay::load(app, id).await?;
    allowed(app, who, id, replay.record.student_id, Use::Read).await?;
    report_of(replay, Some(who))
}

/// A test and its responses as its examinee sees them (their data export):
/// no access check, the caller has made it.
pub async fn examinee_report(app: &App, id: Uuid) -> Result<Report, Error> {
    report_of(Replay::load(app, id).await?, None)
}

/// The report of `replay` as `who` (`None`: the examinee) may see it.
fn report_of(replay: Replay, who: Option<&Caller>) -> Result<Report, Error> {
    let sealed = replay.sealed_for(who);
    let proficiency = replay.proficiency()?;
    let Replay {
        record: t,
        config,
        responses,
        ..
    } = replay;
    let open = !sealed;
    // Staff see which responses answered pretest items; the examinee never does.
    let staff = who.is_some_and(|w| t.student_id != Some(w.user_id));
    Ok(Report {
        classification: classification(&config, &proficiency).filter(|_| open),
        level: config
            .level(proficiency.theta)
            .filter(|_| open)
            .map(str::to_owned),
        scale_score: config
            .scale
            .filter(|_| open)
            .map(|s| s.score(proficiency.theta, proficiency.se)),
        test_id: t.id,
        pool_id: t.pool_id,
        pool_version: t.pool_version,
        student_id: t.student_id,
        assignment_id: t.assignment_id,
        attempt: t.attempt,
        deadline: t.deadline,
        status: t.status.as_str(),
        config,
        proficiency: open.then_some(proficiency),
        items_answered: t.items_answered,
        correct_responses: open.then_some(t.correct_count),
        started_at: t.started_at,
        ended_at: t.ended_at,
        responses: responses
            .into_iter()
            .map(|r| ResponseView {
                seq: r.seq,
                question_id: r.question_id,
                response: r.response,
                correct: open.then_some(r.correct),
                score: open.then_some(r.score),
                theta: open.then_some(r.after.theta),
                se: open.then_some(r.after.se),
                served_at: r.served_at,
                answered_at: r.answered_at,
                pretest: staff && r.pretest,
            })
            .collect(),
    })
}
