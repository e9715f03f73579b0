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

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ai::{ChatRequest, Message};
use crate::app::App;
use crate::cache::ai::{self as ai_cache, Operation};
use crate::cache::semantic as semantic_cache;
use crate::services::auth::Caller;
use crate::services::courses::{self, Position, Taught};
use crate::services::scope::{self, Denied, OrgOf, Standing, Use};
use crate::store::StoreError;
use crate::store::courses as course_store;
use crate::store::semantic::{SetKey, Stored};
use crate::store::teaching::{self as records, Advanced, CourseRef, ProgressStep, Snapshot};
use lectern_orchestrator::prompt::{self, PromptMessage};
use lectern_orchestrator::{
    self as orchestrator, Action, ActionKind, Decision, Input, Intent, Lesson, Metrics,
    TeachingContext, Transition,
};

mod material;

/// Longest input, in characters.
pub const MAX_INPUT_CHARS: usize = orchestrator::QUESTION_CHARS;
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
    /// `course_id` names no course of an organization the caller belongs to.
    #[error("no course with id {0}")]
    NoCourse(Uuid),
    /// `organization_id` is not the course's: there, the course does not exist.
    #[error("no course with id {course} in organization {organization}")]
    NotInOrganization {
        /// The course.
        course: Uuid,
        /// The organization named.
        organization: Uuid,
    },
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
    /// Whether it came from a cache (the exact-match AI cache, or the semantic one).
    pub cached: bool,
    /// From the semantic cache: the similarity of the earlier question it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
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

/// Where a new session begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The course (of an organization the caller is a member of).
    pub course_id: Uuid,
    /// `organization_id` as sent: when given, it must be the course's.
    pub organization_id: Option<Uuid>,
    /// Where to begin; `None`: where the student's progress says (the
    /// beginning of the course the first time).
    pub at: Option<Position>,
}

/// Starts a session of the caller's on the latest version of a course,
/// teaching one sub-topic from where they asked or where their progress left
/// off. It belongs to the course's organization.
pub async fn create(app: &App, caller: &Caller, start: Start) -> Result<Reply, Error> {
    let id = start.course_id;
    let org = OrgOf::Course(id);
    if scope::admitted(app, caller.user_id, org, Standing::member)
        .await?
        .is_err()
    {
        return Err(Error::NoCourse(id));
    }
    let course = courses::taught(app, id, None)
        .await?
        .ok_or(Error::NoCourse(id))?;
    // Within another organization the course does not exist.
    if let Some(organization) = start.organization_id.filter(|&o| o != course.org_id) {
        return Err(Error::NotInOrganization {
            course: id,
            organization,
        });
    }
    let at = match start.at {
        Some(at) => {
            if course.doc.segment(at).is_none() {
                return Err(Error::Invalid(format!(
                    "module_index, sub_topic_index, segment_index: version {} of course {id} has no segment at {}, {}, {}",
                    course.version, at.module_index, at.sub_topic_index, at.segment_index
                )));
            }
            at
        }
        None => resume_at(app, caller.user_id, &course, id).await?,
    };
    let sub_topic = course
        .doc
        .sub_topic(at.module_index, at.sub_topic_index)
        .expect("the position was checked");
    let lesson = Lesson {
        course_id: id.to_string(),
        module_index: at.module_index,
        sub_topic_index: at.sub_topic_index,
        total_segments: sub_topic.segments.len() as u32,
        segment_index: at.segment_index,
        course_version: Some(course.version as u32),
    };
    let now = now_ms();
    let d = orchestrator::start(Uuid::new_v4(), caller.user_id, lesson, now);
    let course_ref = CourseRef {
        id,
        version: course.version,
    };
    records::insert(app.db(), &d, Some(course.org_id), Some(course_ref)).await?;
    // PostgreSQL has it; without Redis it is served from there until Redis is back.
    rebuild(app, &Snapshot::new(&d)).await;
    let mut out = reply(d, None);
    material::fill(&course.doc, &out.context, &mut out.action);
    Ok(out)
}

/// Where the student's progress through `course` says to begin: its saved
/// position when this version still has it, else the beginning.
async fn resume_at(app: &App, user: Uuid, course: &Taught, id: Uuid) -> Result<Position, Error> {
    let saved = course_store::progress_of(app.db(), user, id)
        .await?
        .map(|p| Position {
            module_index: p.module_index.max(0) as u32,
            sub_topic_index: p.sub_topic_index.max(0) as u32,
            segment_index: p.segment_index.max(0) as u32,
        })
        .filter(|&at| course.doc.segment(at).is_some());
    Ok(saved.unwrap_or_default())
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
    let Applied {
        decision: d,
        from_seq,
        snapshot,
        course,
    } = apply(app, caller, id, None, |ctx| {
        orchestrator::decide(ctx, &input, now_ms())
    })
    .await?;
    let ended = d.context.state == orchestrator::State::Ended;
    let mut out = reply(d.clone(), Some(input.intent));
    if let Some(course) = &course {
        material::fill(&course.doc, &out.context, &mut out.action);
    }
    if ended {
        out.summary = Some(summary(&after(app, &d, snapshot).await?));
        forget(app, id).await;
        return Ok(out);
    }
    let answering = d.action.kind == ActionKind::AnswerQuestion;
    // Only an answer is grounded: no other step quotes the neighbours.
    let grounding = course
        .as_deref()
        .filter(|_| answering)
        .map(|c| material::grounding(&c.doc, &d.context));
    let (_, answer) = tokio::join!(follow(app, from_seq, &d, snapshot), async {
        if answering {
            Some(answer(app, &d, course.as_deref(), grounding.as_ref()).await)
        } else {
            None
        }
    });
    let grounded_prompt = || prompt::answer_question(&d.action, grounding.as_ref());
    match answer {
        Some(Ok(Some(a))) => out.answer = Some(a),
        Some(Ok(None)) => out.prompt = Some(grounded_prompt()),
        Some(Err(e)) => {
            out.answer_error = Some(e);
            out.prompt = Some(grounded_prompt());
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
    let (d, snapshot) = match applied {
        Ok(applied) => (applied.decision, applied.snapshot),
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
/// decided on (when it was), and the course version it teaches (when it has one).
async fn apply(
    app: &App,
    caller: &Caller,
    id: Uuid,
    mut snapshot: Option<Snapshot>,
    decide: impl Fn(&TeachingContext) -> Result<Decision, orchestrator::Ended>,
) -> Result<Applied, Error> {
    let mut course: Option<Option<Arc<Taught>>> = None;
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
        if course.is_none() {
            course = Some(course_of(app, ctx).await?);
        }
        let taught = course.clone().flatten();
        let step = taught.as_deref().map(|t| progress_step(app, t, ctx, &d));
        if records::apply(app.db(), from_seq, &d, step.as_ref()).await? {
            return Ok(Applied {
                decision: d,
                from_seq,
                snapshot,
                course: taught,
            });
        }
        // Another input moved the session on: decide again on PostgreSQL's copy.
        hot = None;
        snapshot = None;
    }
    Err(Error::Contended(id))
}

/// A decision recorded in PostgreSQL.
struct Applied {
    decision: Decision,
    /// The seq it was decided on.
    from_seq: u32,
    /// The PostgreSQL snapshot it was decided on, when it was.
    snapshot: Option<Snapshot>,
    /// The course version the session teaches, when it has one.
    course: Option<Arc<Taught>>,
}

/// The course version a session teaches: `None` for a session from before
/// courses were data (its course id is free text).
async fn course_of(app: &App, ctx: &TeachingContext) -> Result<Option<Arc<Taught>>, Error> {
    let (Some(version), Ok(course)) = (ctx.course_version, ctx.course_id.parse::<Uuid>()) else {
        return Ok(None);
    };
    Ok(courses::taught(app, course, Some(version as i32)).await?)
}

/// What `d` (decided on `ctx`) changes in the student's progress through the
/// course: the segment completed, the time since the last step (at most the
/// idle limit), and where the next session begins (the next sub-topic once
/// this one is done).
fn progress_step(app: &App, course: &Taught, ctx: &TeachingContext, d: &Decision) -> ProgressStep {
    let here = |segment_index| Position {
        module_index: ctx.module_index,
        sub_topic_index: ctx.sub_topic_index,
        segment_index,
    };
    let completed = d
        .completed
        .and_then(|i| course.doc.segment(here(i)))
        .map(|s| s.key.clone());
    let idle = app.config().teaching_idle_limit.as_millis() as i64;
    let time_ms = (d.context.updated_at_ms - ctx.updated_at_ms).clamp(0, idle);
    let now = here(d.context.segment_index);
    let next = if d.context.all_done() {
        course.doc.next_sub_topic(now).unwrap_or(now)
    } else {
        now
    };
    ProgressStep {
        course_id: ctx.course_id.parse().unwrap_or_default(),
        completed,
        time_ms,
        position: [
            next.module_index as i32,
            next.sub_topic_index as i32,
            next.segment_index as i32,
        ],
    }
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

/// The answer to the question of `d`, recorded in PostgreSQL: `Ok(None)`
/// when no provider is configured, `Err` (a line for the caller) when it
/// failed. On a course, with the semantic cache on, an earlier answer to a
/// question about the same segment that means the same is reused (one
/// embedding, no chat call); else the provider answers (through the
/// exact-match cache) and the answer is kept for the next such question.
async fn answer(
    app: &App,
    d: &Decision,
    course: Option<&Taught>,
    grounding: Option<&orchestrator::Grounding>,
) -> Result<Option<Answer>, String> {
    if !app.ai().is_configured() {
        return Ok(None);
    }
    let set = semantic_set(app, d, course);
    let style = prompt::style(&d.action);
    let mut embedding = None;
    if let Some((key, threshold, _)) = &set {
        let question = d.action.question.as_deref().unwrap_or_default();
        match reuse(app, key, *threshold, style, question).await {
            Reused::Answer(a) => return Ok(Some(recorded(app, d, a).await)),
            Reused::Nothing(e) => embedding = Some(e),
            Reused::Skipped => {}
        }
    }
    let messages = prompt::answer_question(&d.action, grounding)
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
        similarity: None,
    };
    if let (Some((key, _, cap)), Some(e)) = (&set, embedding) {
        let kept = Stored {
            id: 0,
            style: style.to_owned(),
            model: e.model.clone(),
            vector: e.vector.clone(),
            answer: a.text.clone(),
            answer_model: a.model.clone(),
            tokens: i32::try_from(completion.response.usage.total_tokens).unwrap_or(i32::MAX),
        };
        if let Err(e) = semantic_cache::remember(app.redis(), app.db(), key, &kept, *cap).await {
            tracing::warn!(error = %e, "answer not kept in the semantic cache");
        }
    }
    Ok(Some(recorded(app, d, a).await))
}

/// What the semantic answer cache had for a question.
enum Reused {
    /// An earlier answer close enough.
    Answer(Answer),
    /// Nothing close enough; the question's embedding, to keep the answer by.
    Nothing(Arc<crate::ai::Embedding>),
    /// It could not be asked (the embedding or the search failed).
    Skipped,
}

/// An earlier answer to a question like `question` in the set `key`, of
/// `style`, at least `threshold` similar.
async fn reuse(app: &App, key: &SetKey, threshold: f32, style: &str, question: &str) -> Reused {
    let e = match semantic_cache::embed(app.cache(), app.ai(), question).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "no embedding for a student's question");
            return Reused::Skipped;
        }
    };
    let found = semantic_cache::nearest(
        app.cache(),
        app.db(),
        key,
        style,
        &e.model,
        &e.vector,
        threshold,
    )
    .await;
    match found {
        Ok(Some(hit)) => Reused::Answer(Answer {
            text: hit.answer.answer,
            model: hit.answer.answer_model,
            cached: true,
            similarity: Some(hit.score.clamp(-1.0, 1.0)),
        }),
        Ok(None) => Reused::Nothing(e),
        Err(e) => {
            tracing::warn!(error = %e, "semantic cache not searched");
            Reused::Skipped
        }
    }
}

/// The semantic answer set a question of `d` searches, with the threshold and
/// cap: `None` off a course, with the cache off, or for a remark.
fn semantic_set(app: &App, d: &Decision, course: Option<&Taught>) -> Option<(SetKey, f32, usize)> {
    let config = app.config().semantic?;
    let course = course?;
    d.action.question.as_ref()?;
    let c = &d.context;
    let at = Position {
        module_index: c.module_index,
        sub_topic_index: c.sub_topic_index,
        segment_index: c.segment_index,
    };
    let segment = course.doc.segment(at)?;
    let key = SetKey {
        course: c.course_id.parse().ok()?,
        version: course.version,
        segment: segment.key.clone(),
    };
    Some((key, config.threshold, config.cap))
}

/// `a`, recorded as the answer to the question `d` asked (a re-answer, after
/// confusion, has no question row of its own: the latest keeps its answer).
async fn recorded(app: &App, d: &Decision, a: Answer) -> Answer {
    if d.transition.intent != Some(Intent::Question) {
        return a;
    }
    let id = d.context.session_id;
    let seq = d.context.seq;
    if let Err(e) = records::set_answer(app.db(), id, seq, &a.text, &a.model, a.cached).await {
        tracing::warn!(session = %id, error = %e, "AI answer not recorded");
    }
    a
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
