//! Tutoring sessions: the orchestrator decides, PostgreSQL records every
//! transition first, Redis holds the hot copy after. Any container can serve
//! any session: the context travels through Redis (or PostgreSQL).
//!
//! **Order without locks.** An input is decided on the context at some `seq`
//! and applied in PostgreSQL only if the session is still at that `seq` (one
//! statement). The loser of a race re-reads the session from PostgreSQL and
//! decides again, so two inputs at once are both applied, one after the
//! other, and neither is lost. Redis follows with a compare-and-set on the
//! same `seq`; a copy that is missing or behind is rebuilt from PostgreSQL,
//! and one already ahead is left alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ai::{ChatRequest, Message};
use crate::app::App;
use crate::cache::ai::{self as ai_cache, Operation};
use crate::services::auth::Caller;
use crate::services::scope::{self, Denied, OrgOf, Use};
use crate::store::StoreError;
use crate::store::teaching::{self as records, Advanced, Snapshot};
use crate::store::tenancy;
use lectern_orchestrator::prompt::{self, PromptMessage};
use lectern_orchestrator::{
    self as orchestrator, Action, ActionKind, Decision, Input, Intent, Lesson, Metrics,
    TeachingContext, Transition,
};

/// Longest input, in characters.
pub const MAX_INPUT_CHARS: usize = orchestrator::QUESTION_CHARS;
/// Most segments a sub-topic may have.
pub const MAX_SEGMENTS: u32 = 1000;
/// Longest course id, in characters.
pub const MAX_COURSE_ID_CHARS: usize = 200;
/// How many times an input is decided again after losing a race.
const MAX_ATTEMPTS: usize = 64;

/// The AI operation that answers a student's question.
pub const ANSWER: Operation = Operation {
    name: "teach-answer",
    template_version: prompt::TEMPLATE_VERSION,
    ttl: None,
};

/// What can go wrong in a tutoring session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session with that id (or one the caller may not know about).
    #[error("no teaching session with id {0}")]
    NotFound(Uuid),
    /// The caller may see the session but not take part in it.
    #[error("only the student of teaching session {0} (or an org admin) may do this")]
    Forbidden(Uuid),
    /// `organization_id` names no organization the caller belongs to.
    #[error("no organization with id {0}")]
    NoOrganization(Uuid),
    /// The session has ended.
    #[error("teaching session {0} has ended; it takes no more input")]
    Ended(Uuid),
    /// Inputs kept landing faster than this one could be applied.
    #[error("teaching session {0} kept changing; try again")]
    Contended(Uuid),
    /// Input that fails validation.
    #[error("{0}")]
    Invalid(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An answer generated for the student's question.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The answer.
    pub text: String,
    /// The model that wrote it.
    pub model: String,
    /// Whether it came from the AI response cache.
    pub cached: bool,
}

/// What a session's end reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Segments moved past (continued or skipped).
    pub segments_done: u32,
    /// Segments in the sub-topic.
    pub total_segments: u32,
    /// Questions asked.
    pub questions_asked: u32,
    /// Inputs that broke into a segment being taught.
    pub interruptions: u32,
    /// Interruptions per input.
    pub interruption_rate: f64,
    /// Inputs received.
    pub inputs: u32,
    /// Repeats asked for.
    pub repeats: u32,
    /// Segments skipped.
    pub skips: u32,
    /// Confusion signals.
    pub confusions: u32,
    /// Pauses.
    pub pauses: u32,
    /// Seconds from the start to the end.
    pub duration_s: f64,
}

/// The answer to a new session or an input.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// The session.
    pub session_id: Uuid,
    /// The input's intent (`None` for the start and for `end`).
    pub intent: Option<Intent>,
    /// The context after this step.
    pub context: TeachingContext,
    /// What to do next, with its pedagogical context.
    pub action: Action,
    /// For `answer_question` with an AI provider configured: the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Why no answer could be generated (the provider failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_error: Option<String>,
    /// For `answer_question` without a generated answer: the prompt to send a model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Vec<PromptMessage>>,
    /// When the step ended the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// Counters with the derived rate.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsView {
    /// The counters.
    #[serde(flatten)]
    pub counts: Metrics,
    /// Interruptions per input.
    pub interruption_rate: f64,
}

impl From<Metrics> for MetricsView {
    fn from(counts: Metrics) -> Self {
        Self {
            interruption_rate: counts.interruption_rate(),
            counts,
        }
    }
}

/// A session as `GET /v1/teaching/sessions/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The session.
    pub session_id: Uuid,
    /// Its context.
    pub context: TeachingContext,
    /// Its counters.
    pub metrics: MetricsView,
    /// The last 20 transitions, newest first.
    pub transitions: Vec<Transition>,
    /// Whether the copy came from Redis (false: rebuilt from PostgreSQL).
    pub live: bool,
    /// Once ended: the summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ttl(app: &App) -> Duration {
    app.config().teaching_state_ttl
}

/// Checks a new session's lesson.
pub fn check_lesson(lesson: &Lesson) -> Result<(), Error> {
    let course = lesson.course_id.trim();
    if course.is_empty() || course.chars().count() > MAX_COURSE_ID_CHARS {
        return Err(Error::Invalid(format!(
            "course_id must be 1 to {MAX_COURSE_ID_CHARS} characters"
        )));
    }
    if !(1..=MAX_SEGMENTS).contains(&lesson.total_segments) {
        return Err(Error::Invalid(format!(
            "total_segments must be from 1 to {MAX_SEGMENTS}"
        )));
    }
    Ok(())
}

/// Checks one input's text.
pub fn check_text(text: &str) -> Result<(), Error> {
    let n = text.trim().chars().count();
    if n == 0 || n > MAX_INPUT_CHARS {
        return Err(Error::Invalid(format!(
            "text must be 1 to {MAX_INPUT_CHARS} characters (not only spaces)"
        )));
    }
    Ok(())
}

/// Starts a session of the caller's on `lesson`: teach its first segment. It
/// belongs to `org` (one the caller is a member of), else to the caller's only
/// organization, else to none.
pub async fn create(
    app: &App,
    caller: &Caller,
    org: Option<Uuid>,
    lesson: Lesson,
) -> Result<Reply, Error> {
    check_lesson(&lesson)?;
    let org = match org {
        Some(org) => {
            let standing =
                scope::standing(app, caller.user_id, OrgOf::Organization(org), None, None).await?;
            // No such organization is 404 for everyone, platform admins included.
            if !standing.found {
                return Err(Error::NoOrganization(org));
            }
            standing.member().map_err(|_| Error::NoOrganization(org))?;
            Some(org)
        }
        None => match tenancy::memberships(app.db(), caller.user_id).await?[..] {
            [(only, _)] => Some(only),
            _ => None,
        },
    };
    let lesson = Lesson {
        course_id: lesson.course_id.trim().to_owned(),
        ..lesson
    };
    let now = now_ms();
    let d = orchestrator::start(Uuid::new_v4(), caller.user_id, lesson, now);
    records::insert(app.db(), &d, org).await?;
    // PostgreSQL has it; without Redis it is served from there until Redis is back.
    rebuild(app, &Snapshot::new(&d)).await;
    Ok(reply(d, None))
}

fn reply(d: Decision, intent: Option<Intent>) -> Reply {
    Reply {
        session_id: d.context.session_id,
        intent,
        context: d.context,
        action: d.action,
        answer: None,
        answer_error: None,
        prompt: None,
        summary: None,
    }
}

/// Whether `caller` may `use_` the session owned by `owner`: no I/O for its
/// student; anyone else's standing in the session's organization is read.
async fn allowed(
    app: &App,
    caller: &Caller,
    id: Uuid,
    owner: Uuid,
    use_: Use,
) -> Result<(), Error> {
    let org = OrgOf::TeachingSession(id);
    scope::student_thing(app, caller.user_id, org, Some(owner), use_)
        .await?
        .map_err(|d| match d {
            Denied::Hidden => Error::NotFound(id),
            Denied::Forbidden => Error::Forbidden(id),
        })
}

/// One input to a session: decided, recorded, and (for a question, with an AI
/// provider configured) answered.
pub async fn input(app: &App, caller: &Caller, id: Uuid, text: &str) -> Result<Reply, Error> {
    check_text(text)?;
    let input = Input::new(text);
    let (d, from_seq, snapshot) = apply(app, caller, id, None, |ctx| {
        orchestrator::decide(ctx, &input, now_ms())
    })
    .await?;
    let ended = d.context.state == orchestrator::State::Ended;
    let mut out = reply(d.clone(), Some(input.intent));
    if ended {
        out.summary = Some(summary(&after(app, &d, snapshot).await?));
        forget(app, id).await;
        return Ok(out);
    }
    let answering = d.action.kind == ActionKind::AnswerQuestion;
    let (_, answer) = tokio::join!(follow(app, from_seq, &d, snapshot), async {
        if answering {
            Some(answer(app, &d).await)
        } else {
            None
        }
    });
    match answer {
        Some(Ok(Some(a))) => out.answer = Some(a),
        Some(Ok(None)) => out.prompt = Some(prompt::answer_question(&d.action)),
        Some(Err(e)) => {
            out.answer_error = Some(e);
            out.prompt = Some(prompt::answer_question(&d.action));
        }
        None => {}
    }
    Ok(out)
}

/// Ends a session (idempotent: an ended session answers its summary again).
pub async fn end(app: &App, caller: &Caller, id: Uuid) -> Result<Summary, Error> {
    let snapshot = load(app, id).await?;
    allowed(app, caller, id, snapshot.context.user_id, Use::Act).await?;
    if snapshot.context.state == orchestrator::State::Ended {
        forget(app, id).await;
        return Ok(summary(&snapshot));
    }
    let applied = apply(app, caller, id, Some(snapshot), |ctx| {
        orchestrator::end(ctx, now_ms())
    })
    .await;
    let (d, _, snapshot) = match applied {
        Ok(applied) => applied,
        // Ended meanwhile by another request: the same summary.
        Err(Error::Ended(_)) => return Ok(summary(&load(app, id).await?)),
        Err(e) => return Err(e),
    };
    forget(app, id).await;
    Ok(summary(&after(app, &d, snapshot).await?))
}

/// The session after `d`: from the snapshot it was decided on, when there is
/// one, else from PostgreSQL.
async fn after(app: &App, d: &Decision, snapshot: Option<Snapshot>) -> Result<Snapshot, Error> {
    match snapshot {
        Some(s) => Ok(s.after(d)),
        None => load(app, d.context.session_id).await,
    }
}

/// A session with its counters and last transitions: from Redis, else
/// rebuilt from PostgreSQL (and put back in Redis while it is not over).
pub async fn view(app: &App, caller: &Caller, id: Uuid) -> Result<SessionView, Error> {
    let hot = match records::hot(app.redis(), id, ttl(app)).await {
        Ok(hot) => hot,
        Err(e) if e.is_redis() => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(hot) = hot {
        allowed(app, caller, id, hot.context.user_id, Use::Read).await?;
        return Ok(SessionView {
            session_id: id,
            context: hot.context,
            metrics: hot.metrics.into(),
            transitions: hot.history,
            live: true,
            summary: None,
        });
    }
    let snapshot = load(app, id).await?;
    allowed(app, caller, id, snapshot.context.user_id, Use::Read).await?;
    let ended = snapshot.context.state == orchestrator::State::Ended;
    if !ended {
        rebuild(app, &snapshot).await;
    }
    Ok(SessionView {
        session_id: id,
        summary: ended.then(|| summary(&snapshot)),
        metrics: snapshot.metrics.into(),
        context: snapshot.context,
        transitions: snapshot.history,
        live: false,
    })
}

async fn load(app: &App, id: Uuid) -> Result<Snapshot, Error> {
    records::load(app.db(), id)
        .await?
        .ok_or(Error::NotFound(id))
}

/// Decides with `decide` on the session's latest context (`snapshot` when
/// given, else Redis's copy) and records the result, deciding again on
/// PostgreSQL's copy each time another input got there first. Returns the
/// decision, the seq it was decided on, and the PostgreSQL snapshot it was
/// decided on (when it was).
async fn apply(
    app: &App,
    caller: &Caller,
    id: Uuid,
    mut snapshot: Option<Snapshot>,
    decide: impl Fn(&TeachingContext) -> Result<Decision, orchestrator::Ended>,
) -> Result<(Decision, u32, Option<Snapshot>), Error> {
    // The first try decides on Redis's copy: no PostgreSQL read on the hot path.
    let mut hot = if snapshot.is_some() {
        None
    } else {
        match records::context(app.redis(), id, now_ms(), ttl(app)).await {
            Ok(ctx) => ctx,
            Err(e) if e.is_redis() => None,
            Err(e) => return Err(e.into()),
        }
    };
    for _ in 0..MAX_ATTEMPTS {
        if hot.is_none() && snapshot.is_none() {
            snapshot = Some(load(app, id).await?);
        }
        let ctx = match (&hot, &snapshot) {
            (Some(ctx), _) => ctx,
            (None, Some(s)) => &s.context,
            (None, None) => unreachable!("loaded above"),
        };
        allowed(app, caller, id, ctx.user_id, Use::Act).await?;
        let Ok(d) = decide(ctx) else {
            if hot.is_some() {
                // Redis says ended; only PostgreSQL can say so for sure.
                hot = None;
                continue;
            }
            forget(app, id).await;
            return Err(Error::Ended(id));
        };
        let from_seq = ctx.seq;
        if records::apply(app.db(), from_seq, &d).await? {
            return Ok((d, from_seq, snapshot));
        }
        // Another input moved the session on: decide again on PostgreSQL's copy.
        hot = None;
        snapshot = None;
    }
    Err(Error::Contended(id))
}

/// Brings Redis up to a decision PostgreSQL has recorded.
async fn follow(app: &App, from_seq: u32, d: &Decision, snapshot: Option<Snapshot>) {
    let id = d.context.session_id;
    let outcome = match records::advance(app.redis(), from_seq, d, ttl(app)).await {
        Ok(a) => a,
        Err(e) => {
            // PostgreSQL has it; the next request finds Redis behind and rebuilds.
            tracing::warn!(session = %id, error = %e, "teaching state not written to Redis");
            return;
        }
    };
    if outcome == Advanced::NeedsRebuild {
        match after(app, d, snapshot).await {
            Ok(s) => rebuild(app, &s).await,
            Err(e) => tracing::warn!(session = %id, error = %e, "teaching state not rebuilt"),
        }
    }
}

/// Puts a snapshot in Redis (unless Redis already has it or later), and the
/// session in the live index.
async fn rebuild(app: &App, s: &Snapshot) {
    let id = s.context.session_id;
    let (written, indexed) = tokio::join!(
        records::replace(app.redis(), s, ttl(app)),
        records::index(app.redis(), id, now_ms(), ttl(app)),
    );
    if let Err(e) = written.and(indexed) {
        tracing::warn!(session = %id, error = %e, "teaching state not rebuilt in Redis");
    }
}

/// Drops an ended session's Redis keys (best effort: they expire anyway).
async fn forget(app: &App, id: Uuid) {
    if let Err(e) = records::remove(app.redis(), id).await {
        tracing::warn!(session = %id, error = %e, "ended teaching session left in Redis until its TTL");
    }
}

fn summary(s: &Snapshot) -> Summary {
    let m = &s.metrics;
    let c = &s.context;
    let end_ms = s
        .ended_at
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(c.updated_at_ms);
    Summary {
        segments_done: c.segments_done,
        total_segments: c.total_segments,
        questions_asked: m.questions_asked,
        interruptions: m.interruptions,
        interruption_rate: m.interruption_rate(),
        inputs: m.inputs,
        repeats: m.repeats,
        skips: m.skips,
        confusions: m.confusions,
        pauses: m.pauses,
        duration_s: (end_ms - c.started_at_ms).max(0) as f64 / 1000.0,
    }
}

/// The answer to the question of `d` through the cached AI client, recorded
/// in PostgreSQL: `Ok(None)` when no provider is configured, `Err` (a line
/// for the caller) when it failed.
async fn answer(app: &App, d: &Decision) -> Result<Option<Answer>, String> {
    if !app.ai().is_configured() {
        return Ok(None);
    }
    let messages = prompt::answer_question(&d.action)
        .into_iter()
        .map(|m| match m.role {
            "system" => Message::system(m.content),
            _ => Message::user(m.content),
        })
        .collect();
    let completion =
        ai_cache::complete(app.cache(), app.ai(), &ANSWER, &ChatRequest::new(messages))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "no AI answer to a student's question");
                e.to_string()
            })?;
    let a = Answer {
        text: completion.response.content.clone(),
        model: completion.response.model.clone(),
        cached: completion.cached,
    };
    let id = d.context.session_id;
    // Only a question the student asked has a row; a re-answer (confusion) updates the latest.
    let seq = if d.transition.intent == Some(Intent::Question) {
        d.context.seq
    } else {
        return Ok(Some(a));
    };
    if let Err(e) = records::set_answer(app.db(), id, seq, &a.text, &a.model, a.cached).await {
        tracing::warn!(session = %id, error = %e, "AI answer not recorded");
    }
    Ok(Some(a))
}

/// What `GET /v1/admin/teaching/stats` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Sessions with live state in Redis.
    pub active_sessions: u64,
    /// The window the aggregates cover, in hours.
    pub window_hours: u32,
    /// Sessions started in the window, and what they did.
    #[serde(flatten)]
    pub window: records::Aggregates,
}

/// Live sessions (Redis index, never KEYS or SCAN) and the sessions started in
/// the last `hours` (PostgreSQL; 24 unless asked, from 1 to 720).
pub async fn stats(app: &App, hours: Option<u32>) -> Result<Stats, Error> {
    let hours = hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(Error::Invalid("hours must be from 1 to 720".into()));
    }
    let since = OffsetDateTime::now_utc() - time::Duration::hours(i64::from(hours));
    let (active, window) = tokio::join!(
        records::live_count(app.redis(), now_ms()),
        records::aggregates(app.db(), since)
    );
    Ok(Stats {
        active_sessions: active?,
        window_hours: hours,
        window: window?,
    })
}
