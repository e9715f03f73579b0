//! The teaching orchestrator, pure: a tutoring session's [`TeachingContext`],
//! and the decision (context, input) → (new context, [`Action`]). No I/O, no
//! clock: the caller passes the time.
//!
//! States: `teaching` a segment, `answering_question`, `paused`, `completed`
//! (every segment taught; questions and repeats still welcome) and `ended`
//! (nothing more is accepted). The table, by state and [intent](Intent):
//!
//! | intent | teaching | answering_question | paused | completed |
//! |---|---|---|---|---|
//! | question | answer_question → answering | answer_question (follow-up) | answer_question → answering | answer_question → answering |
//! | continue | next segment (teach_segment), or summarize → completed after the last | resume → teaching | resume → teaching | summarize |
//! | skip | as continue, counted as a skip | next segment → teaching | next segment → teaching | summarize |
//! | repeat | repeat_segment | repeat_segment → teaching | repeat_segment → teaching | repeat_segment (last) → teaching |
//! | confused | repeat_segment, confusion + 1 | answer_question again (same question), confusion + 1 | repeat_segment → teaching, confusion + 1 | repeat_segment → teaching, confusion + 1 |
//! | pause | pause → paused | pause → paused | pause (still) | pause → paused |
//! | resume | resume (nothing to resume) | resume → teaching | resume → teaching | resume (nothing to resume) |
//! | end | end_session → ended | end_session → ended | end_session → ended | end_session → ended |
//! | other | acknowledge | acknowledge | pause (still) | acknowledge |
//!
//! "→ teaching" after the last segment is done means → completed. A question,
//! repeat, confusion or pause that arrives while `teaching` interrupts the
//! lesson ([`Metrics::interruptions`]). The confusion level (0–3) rises on
//! confusion — a question that [sounds confused](sounds_confused) too — and
//! falls by one each time the student moves on. Pace is read from the
//! signals: `slower` at confusion ≥ 2 or two repeats of one segment,
//! `faster` after two skips in a row.

pub mod content;
pub mod intent;
pub mod prompt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use content::{CheckQuestion, Content, Grounding, ItemRef, Material};
pub use intent::{Intent, classify, sounds_confused};

/// How many of the latest questions the context keeps (and passes to a language model).
pub const RECENT_QUESTIONS: usize = 5;
/// Longest question kept in the context, in characters.
pub const QUESTION_CHARS: usize = 1000;
/// Highest confusion level.
pub const MAX_CONFUSION: u8 = 3;

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A segment is being taught.
    Teaching,
    /// A question of the student's is being answered.
    AnsweringQuestion,
    /// The student asked to stop for a while.
    Paused,
    /// Every segment has been taught.
    Completed,
    /// The session is over; nothing more is accepted.
    Ended,
}

impl State {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Teaching => "teaching",
            State::AnsweringQuestion => "answering_question",
            State::Paused => "paused",
            State::Completed => "completed",
            State::Ended => "ended",
        }
    }
}

/// How fast the student seems to want to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Confused or asking for repeats: go slower, simpler.
    Slower,
    /// No signal either way.
    Normal,
    /// Skipping: go faster.
    Faster,
}

/// Everything the orchestrator knows about a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeachingContext {
    /// The session.
    pub session_id: Uuid,
    /// The student.
    pub user_id: Uuid,
    /// The course taught.
    pub course_id: String,
    /// The version of the course taught (`None`: a session from before
    /// courses were data, on a free-text course id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_version: Option<u32>,
    /// Module of the course (0-based).
    pub module_index: u32,
    /// Sub-topic of the module (0-based).
    pub sub_topic_index: u32,
    /// Segment being taught (0-based, < `total_segments`).
    pub segment_index: u32,
    /// Segments in the sub-topic.
    pub total_segments: u32,
    /// Segments moved past (continued or skipped).
    pub segments_done: u32,
    /// Where the session is.
    pub state: State,
    /// The latest questions, oldest first (at most [`RECENT_QUESTIONS`]).
    pub recent_questions: Vec<String>,
    /// 0 (following) to [`MAX_CONFUSION`].
    pub confusion: u8,
    /// Repeats (asked or from confusion) of the current segment.
    pub repeats_in_segment: u8,
    /// Skips in a row.
    pub consecutive_skips: u8,
    /// Transitions so far (0 after the start).
    pub seq: u32,
    /// When the session started (Unix ms).
    pub started_at_ms: i64,
    /// When the last transition happened (Unix ms).
    pub updated_at_ms: i64,
}

/// What a new session is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The course.
    pub course_id: String,
    /// Module (0-based).
    pub module_index: u32,
    /// Sub-topic (0-based).
    pub sub_topic_index: u32,
    /// Segments in the sub-topic (≥ 1).
    pub total_segments: u32,
    /// The segment to begin with (0-based; the ones before count as done).
    pub segment_index: u32,
    /// The course's version.
    pub course_version: Option<u32>,
}

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Teach the segment named (a new one).
    TeachSegment,
    /// Answer the student's question.
    AnswerQuestion,
    /// Teach the current segment again (simpler when confused).
    RepeatSegment,
    /// Reply briefly to a remark, then go on with the segment.
    Acknowledge,
    /// Stop; wait for the student to come back.
    Pause,
    /// Pick the current segment up where it was left.
    Resume,
    /// Every segment is taught: sum the sub-topic up.
    Summarize,
    /// Close the session.
    EndSession,
}

impl ActionKind {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::TeachSegment => "teach_segment",
            ActionKind::AnswerQuestion => "answer_question",
            ActionKind::RepeatSegment => "repeat_segment",
            ActionKind::Acknowledge => "acknowledge",
            ActionKind::Pause => "pause",
            ActionKind::Resume => "resume",
            ActionKind::Summarize => "summarize",
            ActionKind::EndSession => "end_session",
        }
    }
}

/// Where in the course an action is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The course.
    pub course_id: String,
    /// Module (0-based).
    pub module_index: u32,
    /// Sub-topic (0-based).
    pub sub_topic_index: u32,
    /// Segment (0-based).
    pub segment_index: u32,
    /// Segments in the sub-topic.
    pub total_segments: u32,
    /// Segments moved past.
    pub segments_done: u32,
}

/// An action and the pedagogical context a caller needs to prompt a language model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What to do.
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// Where in the course.
    pub segment: Segment,
    /// The question to answer (`answer_question`) or the remark to acknowledge.
    pub question: Option<String>,
    /// The latest questions of the session, oldest first.
    pub recent_questions: Vec<String>,
    /// 0 (following) to 3.
    pub confusion_level: u8,
    /// How fast to go.
    pub pace: Pace,
    /// What it teaches, from the course (filled by the caller, who has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
}

/// Counters of a session (and the change one transition makes to them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Inputs received.
    pub inputs: u32,
    /// Questions asked.
    pub questions_asked: u32,
    /// Inputs that broke into the lesson while a segment was being taught
    /// (question, repeat, confusion, pause).
    pub interruptions: u32,
    /// Repeats asked for.
    pub repeats: u32,
    /// Segments skipped.
    pub skips: u32,
    /// Confusion signals.
    pub confusions: u32,
    /// Pauses.
    pub pauses: u32,
}

impl Metrics {
    /// Field names as stored (the Redis hash, the PostgreSQL columns) with their values.
    pub fn fields(&self) -> [(&'static str, u32); 7] {
        [
            ("inputs", self.inputs),
            ("questions_asked", self.questions_asked),
            ("interruptions", self.interruptions),
            ("repeats", self.repeats),
            ("skips", self.skips),
            ("confusions", self.confusions),
            ("pauses", self.pauses),
        ]
    }

    /// Built from stored `(name, value)` pairs; unknown names are ignored.
    pub fn from_fields<'a>(pairs: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut m = Metrics::default();
        for (name, value) in pairs {
            let slot = match name {
                "inputs" => &mut m.inputs,
                "questions_asked" => &mut m.questions_asked,
                "interruptions" => &mut m.interruptions,
                "repeats" => &mut m.repeats,
                "skips" => &mut m.skips,
                "confusions" => &mut m.confusions,
                "pauses" => &mut m.pauses,
                _ => continue,
            };
            *slot = value;
        }
        m
    }

    /// Adds a transition's change.
    pub fn add(&mut self, delta: &Metrics) {
        self.inputs += delta.inputs;
        self.questions_asked += delta.questions_asked;
        self.interruptions += delta.interruptions;
        self.repeats += delta.repeats;
        self.skips += delta.skips;
        self.confusions += delta.confusions;
        self.pauses += delta.pauses;
    }

    /// Interruptions per input (0 without inputs).
    pub fn interruption_rate(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            f64::from(self.interruptions) / f64::from(self.inputs)
        }
    }
}

/// One transition, as history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Its number in the session (0: the start).
    pub seq: u32,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The input that caused it (`None`: the start, or `end` by its endpoint).
    pub input: Option<String>,
    /// The input's intent.
    pub intent: Option<Intent>,
    /// State before (`None` at the start).
    pub from: Option<State>,
    /// State after.
    pub to: State,
    /// The action decided.
    pub action: ActionKind,
    /// Segment after.
    pub segment_index: u32,
    /// Confusion level after.
    pub confusion: u8,
}

/// What one step decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The context after it.
    pub context: TeachingContext,
    /// What the caller should do.
    pub action: Action,
    /// The transition, for history.
    pub transition: Transition,
    /// The change to the session's counters.
    pub delta: Metrics,
    /// The segment this step completed ("continue" past it; a skip completes nothing).
    pub completed: Option<u32>,
}

/// One input, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// As the student wrote it.
    pub text: String,
    /// What it asks for.
    pub intent: Intent,
    /// Whether it carries a confusion marker.
    pub confused: bool,
}

impl Input {
    /// Classifies `text`.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            intent: classify(text),
            confused: sounds_confused(text),
        }
    }
}

/// The session is over: nothing more is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session has ended")]
pub struct Ended;

impl TeachingContext {
    /// The pace the signals point to.
    pub fn pace(&self) -> Pace {
        if self.confusion >= 2 || self.repeats_in_segment >= 2 {
            Pace::Slower
        } else if self.consecutive_skips >= 2 {
            Pace::Faster
        } else {
            Pace::Normal
        }
    }

    /// Where the session is in the course.
    pub fn segment(&self) -> Segment {
        Segment {
            course_id: self.course_id.clone(),
            module_index: self.module_index,
            sub_topic_index: self.sub_topic_index,
            segment_index: self.segment_index,
            total_segments: self.total_segments,
            segments_done: self.segments_done,
        }
    }

    /// Every segment has been moved past.
    pub fn all_done(&self) -> bool {
        self.segments_done >= self.total_segments
    }

    /// What the lesson goes back to after a pause or a question.
    fn lesson_state(&self) -> State {
        if self.all_done() {
            State::Completed
        } else {
            State::Teaching
        }
    }

    fn action(&self, kind: ActionKind, question: Option<String>) -> Action {
        Action {
            kind,
            segment: self.segment(),
            question,
            recent_questions: self.recent_questions.clone(),
            confusion_level: self.confusion,
            pace: self.pace(),
            content: None,
        }
    }
}

/// A new session on `lesson`: teach the segment it begins with.
pub fn start(session_id: Uuid, user_id: Uuid, lesson: Lesson, now_ms: i64) -> Decision {
    let total_segments = lesson.total_segments.max(1);
    let first = lesson.segment_index.min(total_segments - 1);
    let context = TeachingContext {
        session_id,
        user_id,
        course_id: lesson.course_id,
        course_version: lesson.course_version,
        module_index: lesson.module_index,
        sub_topic_index: lesson.sub_topic_index,
        segment_index: first,
        total_segments,
        segments_done: first,
        state: State::Teaching,
        recent_questions: Vec::new(),
        confusion: 0,
        repeats_in_segment: 0,
        consecutive_skips: 0,
        seq: 0,
        started_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let action = context.action(ActionKind::TeachSegment, None);
    let transition = Transition {
        seq: 0,
        at_ms: now_ms,
        input: None,
        intent: None,
        from: None,
        to: State::Teaching,
        action: ActionKind::TeachSegment,
        segment_index: first,
        confusion: 0,
    };
    Decision {
        context,
        action,
        transition,
        delta: Metrics::default(),
        completed: None,
    }
}

/// The decision on one input.
pub fn decide(ctx: &TeachingContext, input: &Input, now_ms: i64) -> Result<Decision, Ended> {
    step(ctx, Some(input), input.intent, now_ms)
}

/// Ends the session (its `end` endpoint: no input, the same step as "end").
pub fn end(ctx: &TeachingContext, now_ms: i64) -> Result<Decision, Ended> {
    step(ctx, None, Intent::End, now_ms)
}

fn step(
    ctx: &TeachingContext,
    input: Option<&Input>,
    intent: Intent,
    now_ms: i64,
) -> Result<Decision, Ended> {
    use ActionKind as A;
    use State as S;
    let from = ctx.state;
    if from == S::Ended {
        return Err(Ended);
    }
    let mut next = ctx.clone();
    let mut delta = Metrics {
        inputs: u32::from(input.is_some()),
        ..Metrics::default()
    };
    let confused_too = input.is_some_and(|i| i.confused);
    let text = input.map(|i| truncate(&i.text));
    let interrupts = matches!(
        intent,
        Intent::Question | Intent::Repeat | Intent::Confused | Intent::Pause
    ) && from == S::Teaching;
    delta.interruptions = u32::from(interrupts);
    let mut completed = None;

    let (kind, question) = match (from, intent) {
        (_, Intent::End) => {
            next.state = S::Ended;
            (A::EndSession, None)
        }
        (_, Intent::Question) => {
            delta.questions_asked = 1;
            if confused_too {
                next.raise_confusion(&mut delta);
            }
            let q = text.clone().unwrap_or_default();
            next.recent_questions.push(q.clone());
            let excess = next.recent_questions.len().saturating_sub(RECENT_QUESTIONS);
            next.recent_questions.drain(..excess);
            next.state = S::AnsweringQuestion;
            (A::AnswerQuestion, Some(q))
        }
        (S::Paused, Intent::Pause | Intent::Other) => (A::Pause, None),
        (_, Intent::Pause) => {
            delta.pauses = 1;
            next.state = S::Paused;
            (A::Pause, None)
        }
        (S::Paused | S::AnsweringQuestion, Intent::Resume)
        | (S::Paused | S::AnsweringQuestion, Intent::Continue) => {
            next.state = next.lesson_state();
            (A::Resume, None)
        }
        (S::Teaching | S::Completed | S::Ended, Intent::Resume) => (A::Resume, None),
        (S::Completed, Intent::Continue | Intent::Skip) => (A::Summarize, None),
        (_, Intent::Continue | Intent::Skip) => {
            if intent == Intent::Skip {
                delta.skips = 1;
                next.consecutive_skips = next.consecutive_skips.saturating_add(1);
            } else {
                next.consecutive_skips = 0;
            }
            next.confusion = next.confusion.saturating_sub(1);
            if intent == Intent::Continue {
                completed = Some(ctx.segment_index);
            }
            next.advance()
        }
        (_, Intent::Repeat) => {
            delta.repeats = 1;
            next.repeat();
            (A::RepeatSegment, None)
        }
        (S::AnsweringQuestion, Intent::Confused) => {
            next.raise_confusion(&mut delta);
            (A::AnswerQuestion, next.recent_questions.last().cloned())
        }
        (_, Intent::Confused) => {
            next.raise_confusion(&mut delta);
            next.repeat();
            (A::RepeatSegment, None)
        }
        (_, Intent::Other) => (A::Acknowledge, text.clone()),
    };

    next.seq = ctx.seq + 1;
    next.updated_at_ms = now_ms;
    let action = next.action(kind, question);
    let transition = Transition {
        seq: next.seq,
        at_ms: now_ms,
        input: text,
        intent: input.map(|i| i.intent),
        from: Some(from),
        to: next.state,
        action: kind,
        segment_index: next.segment_index,
        confusion: next.confusion,
    };
    Ok(Decision {
        context: next,
        action,
        transition,
        delta,
        completed,
    })
}

impl TeachingContext {
    /// Moves past the current segment: the next one, or the summary after the last.
    fn advance(&mut self) -> (ActionKind, Option<String>) {
        self.segments_done = self.segments_done.max(self.segment_index + 1);
        self.repeats_in_segment = 0;
        if self.segment_index + 1 < self.total_segments {
            self.segment_index += 1;
            self.state = State::Teaching;
            (ActionKind::TeachSegment, None)
        } else {
            self.state = State::Completed;
            (ActionKind::Summarize, None)
        }
    }

    fn repeat(&mut self) {
        self.repeats_in_segment = self.repeats_in_segment.saturating_add(1);
        self.consecutive_skips = 0;
        self.state = State::Teaching;
    }

    fn raise_confusion(&mut self, delta: &mut Metrics) {
        delta.confusions = 1;
        self.confusion = (self.confusion + 1).min(MAX_CONFUSION);
    }
}

/// A question or remark as kept: at most [`QUESTION_CHARS`] characters.
fn truncate(text: &str) -> String {
    text.trim().chars().take(QUESTION_CHARS).collect()
}

#[cfg(test)]
mod tests;
