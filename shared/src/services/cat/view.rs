//! What the test loop hands back: the bodies of the API's responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::TestConfig;
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

/// A question as served: never with its key.
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
    answers: &[bool],
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
    /// Always `active`.
    pub status: &'static str,
    /// First question.
    pub question: Question,
    /// The prior.
    pub proficiency: Proficiency,
    /// Always 0.
    pub items_answered: u32,
    /// Effective configuration.
    #[serde(serialize_with = "shown_config")]
    pub config: TestConfig,
}

/// The outcome of one answer.
#[derive(Debug, Serialize)]
pub struct Submitted {
    /// Whether the answer was the key.
    pub correct: bool,
    /// Updated ability.
    pub proficiency: Proficiency,
    /// Responses recorded so far.
    pub items_answered: u32,
    /// `active` or `completed`.
    pub status: &'static str,
    /// The next question, unless the stop rule fired.
    pub next_question: Option<Question>,
    /// Why the test completed: `max_items`, `se_target`, `classified_above`,
    /// `classified_below` or `bank_exhausted`; absent while it goes on.
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

/// A test's results.
#[derive(Debug, Serialize)]
pub struct Ended {
    /// Test id.
    pub test_id: Uuid,
    /// Always `ended`.
    pub status: &'static str,
    /// Final ability.
    pub proficiency: Proficiency,
    /// Responses recorded.
    pub total_questions: u32,
    /// Correct responses.
    pub correct_responses: u32,
    /// correct / total (0 with no responses).
    pub accuracy: f64,
    /// Seconds from start to end.
    pub duration_s: f64,
    /// For classification tests, the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
}

/// One recorded response, as reported.
#[derive(Debug, Serialize)]
pub struct ResponseView {
    /// 1-based order.
    pub seq: i32,
    /// The question answered.
    pub question_id: String,
    /// The option chosen.
    pub response: String,
    /// Whether it was the key.
    pub correct: bool,
    /// θ after this response.
    pub theta: f64,
    /// SE after this response.
    pub se: f64,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub answered_at: time::OffsetDateTime,
}

/// The effective configuration as a request would send it: `confidence` only
/// beside a `cut_score` (a request refuses one without the other), so a client
/// can send back the configuration it was shown and start the same kind of test.
fn shown_config<S: serde::Serializer>(config: &TestConfig, s: S) -> Result<S::Ok, S::Error> {
    let mut shown = serde_json::to_value(config).map_err(serde::ser::Error::custom)?;
    if config.cut_score.is_none()
        && let Some(fields) = shown.as_object_mut()
    {
        fields.remove("confidence");
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
    /// Current (or final) ability.
    pub proficiency: Proficiency,
    /// For classification tests, the verdict on the current (or final) ability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Responses recorded.
    pub items_answered: i32,
    /// Correct responses.
    pub correct_responses: i32,
    /// Start time.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// End time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<time::OffsetDateTime>,
    /// Every response in order.
    pub responses: Vec<ResponseView>,
}
