//! What the test loop hands back: the bodies of the API's responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::TestConfig;
use super::design::ScaleScore;
use crate::store::pools::{PoolBank, QuestionText};
use lectern_engine::{self as engine, Estimate, Estimator};

/// θ and SE of one concept, from the answers to its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptProficiency {
    /// Ability on this concept.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Items answered that are tagged with it.
    pub n: usize,
}

/// Overall and per-concept ability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proficiency {
    /// Overall ability.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// By concept name.
    pub concepts: BTreeMap<String, ConceptProficiency>,
}

/// A question as served: never with its key, and the same for a pretest
/// item as for any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Question id.
    pub id: String,
    /// Question text.
    pub content: String,
    /// Answer choices.
    pub options: Vec<String>,
    /// Concept names.
    pub concepts: Vec<String>,
    /// 1-based position in this test.
    pub position: u32,
}

/// A question of the bank as served at `position`.
pub(super) fn question(text: &QuestionText, position: u32) -> Question {
    Question {
        id: text.id.clone(),
        content: text.content.clone(),
        options: text.options.clone(),
        concepts: text.concepts.clone(),
        position,
    }
}

/// Overall estimate plus one estimate per concept answered.
pub(super) fn proficiency(
    bank: &PoolBank,
    estimator: &dyn Estimator,
    overall: Estimate,
    items: &[usize],
    answers: &[u8],
) -> Proficiency {
    let concepts = engine::concept_estimates(estimator, &bank.bank, items, answers)
        .into_iter()
        .map(|(id, e, n)| {
            (
                bank.concept_names[id as usize].clone(),
                ConceptProficiency {
                    theta: e.theta,
                    se: e.se,
                    n,
                },
            )
        })
        .collect();
    Proficiency {
        theta: overall.theta,
        se: overall.se,
        concepts,
    }
}

/// A started test.
#[derive(Debug, Serialize)]
pub struct Started {
    /// New test id.
    pub test_id: Uuid,
    /// The organization the test belongs to (`None`: a personal test).
    pub organization_id: Option<Uuid>,
    /// The assignment this test is an attempt at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<Uuid>,
    /// Which attempt (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// No answer counts after this.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub deadline: Option<time::OffsetDateTime>,
    /// Always `active`.
    pub status: &'static str,
    /// First question.
    pub question: Question,
    /// The prior (not in exam mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proficiency: Option<Proficiency>,
    /// Always 0.
    pub items_answered: u32,
    /// Effective configuration.
    #[serde(serialize_with = "shown_config")]
    pub config: TestConfig,
}

/// The outcome of one answer.
#[derive(Debug, Serialize)]
pub struct Submitted {
    /// Whether the answer got the item's top score (the key, for a
    /// right/wrong item; not in exam mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// The answer's score, 0…m (1/0 for a right/wrong item; not in exam mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Updated ability (not in exam mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proficiency: Option<Proficiency>,
    /// Responses recorded so far (every question answered).
    pub items_answered: u32,
    /// `active` or `completed`.
    pub status: &'static str,
    /// The next question, unless the stop rule fired.
    pub next_question: Option<Question>,
    /// Why the test completed: `max_items`, `se_target`, `classified_above`,
    /// `classified_below`, `classified` (inside one performance level) or `bank_exhausted`; absent while it goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<&'static str>,
}

/// The verdict of a classification test (one with `config.cut_score`).
#[derive(Debug, Serialize)]
pub struct Classification {
    /// The cut score.
    pub cut_score: f64,
    /// Confidence level of the interval θ ± z·SE.
    pub confidence: f64,
    /// `above` or `below` when the interval excludes the cut, else `undecided`.
    pub decision: &'static str,
}

/// The classification of `theta` ± `se` under `config`, for classification tests.
pub(super) fn classification(config: &TestConfig, p: &Proficiency) -> Option<Classification> {
    let rule = config.classify()?;
    Some(Classification {
        cut_score: rule.cut,
        confidence: config.confidence,
        decision: match rule.decide(p.theta, p.se) {
            Some(engine::Side::Above) => "above",
            Some(engine::Side::Below) => "below",
            None => "undecided",
        },
    })
}

/// A test's results. An exam's student sees only its status, length and
/// duration until staff release the results.
#[derive(Debug, Serialize)]
pub struct Ended {
    /// Test id.
    pub test_id: Uuid,
    /// `ended` or `timed_out`.
    pub status: &'static str,
    /// Final ability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proficiency: Option<Proficiency>,
    /// Scored responses recorded (pretest answers are not results).
    pub total_questions: u32,
    /// Scored responses with the item's top score (right answers, for right/wrong items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_responses: Option<u32>,
    /// correct / total (0 with no responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Seconds from start to end.
    pub duration_s: f64,
    /// For classification tests, the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// The performance level θ falls in, when the design has levels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The reported scale score, when the design has a scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_score: Option<ScaleScore>,
    /// For exams: whether staff released the results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<bool>,
}

/// One recorded response, as reported (an exam's student sees no
/// correctness or estimate before the release).
#[derive(Debug, Serialize)]
pub struct ResponseView {
    /// 1-based order.
    pub seq: i32,
    /// The question answered.
    pub question_id: String,
    /// The option chosen.
    pub response: String,
    /// Whether it got the item's top score (the key, for a right/wrong item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// Its score, 0…m (1/0 for a right/wrong item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// θ after this response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    /// SE after this response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub se: Option<f64>,
    /// When its question was served (absent for tests before assessments).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub served_at: Option<time::OffsetDateTime>,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub answered_at: time::OffsetDateTime,
    /// It answered a pretest item (shown to staff only, and only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pretest: bool,
}

/// The effective configuration as a request would send it: `confidence` only
/// beside a `cut_score` (a request refuses one without the other), so a client
/// can send back the configuration it was shown and start the same kind of test.
fn shown_config<S: serde::Serializer>(config: &TestConfig, s: S) -> Result<S::Ok, S::Error> {
    let mut shown = serde_json::to_value(config).map_err(serde::ser::Error::custom)?;
    if let Some(fields) = shown.as_object_mut() {
        if config.cut_score.is_none() && config.levels.is_empty() {
            fields.remove("confidence");
        }
        // The design's parts a test does not use are left out, as a request leaves them.
        fields.retain(|name, value| {
            let unused = match name.as_str() {
                "blueprint" | "enemies" | "levels" => {
                    value.as_object().is_some_and(|o| o.is_empty())
                        || value.as_array().is_some_and(|a| a.is_empty())
                }
                "time_limit_s" | "scale" => value.is_null(),
                "mode" => value == "practice",
                "pretest_items" => value == 0,
                _ => false,
            };
            !unused
        });
    }
    shown.serialize(s)
}

/// A test as recorded in PostgreSQL.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Test id.
    pub test_id: Uuid,
    /// Pool id.
    pub pool_id: Uuid,
    /// Pool version the test uses.
    pub pool_version: i32,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// Lifecycle state.
    pub status: &'static str,
    /// Effective configuration.
    #[serde(serialize_with = "shown_config")]
    pub config: TestConfig,
    /// The assignment this test is an attempt at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<Uuid>,
    /// Which attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// No answer counts after this.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub deadline: Option<time::OffsetDateTime>,
    /// Current (or final) ability (an exam's student: once released).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proficiency: Option<Proficiency>,
    /// For classification tests, the verdict on the current (or final) ability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// The performance level, when the design has levels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The reported scale score, when the design has a scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_score: Option<ScaleScore>,
    /// Responses recorded (pretest ones included).
    pub items_answered: i32,
    /// Scored responses with the item's top score (an exam's student: once released).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_responses: Option<i32>,
    /// Start time.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// End time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<time::OffsetDateTime>,
    /// Every response in order.
    pub responses: Vec<ResponseView>,
}
