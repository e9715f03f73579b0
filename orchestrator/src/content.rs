//! What an action teaches, from the course: the orchestrator decides with
//! indexes only, and the caller, who has the course, fills these in.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A question that checks understanding of a segment. One with an answer key
/// references an item of a pool, where the key stays: course content (and so
/// every action) holds no answer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuestion {
    /// The question as the tutor asks it.
    pub text: String,
    /// An item of a pool of the course's organization (or a shared one).
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub item: Option<ItemRef>,
}

/// An optional field that may be left out but is never `null`.
fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An item of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    /// The pool.
    pub pool_id: Uuid,
    /// The item's id in it.
    pub item_id: String,
}

/// A segment as an action carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentContent {
    /// Its key in the course.
    pub key: String,
    /// The module's title.
    pub module_title: String,
    /// The sub-topic's title.
    pub sub_topic_title: String,
    /// Its title.
    pub title: String,
    /// What to teach, in Markdown.
    pub text: String,
    /// Questions that check the student followed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub check_questions: Vec<CheckQuestion>,
}

/// A segment covered, as a summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Covered {
    /// Its key.
    pub key: String,
    /// Its title.
    pub title: String,
}

/// The summary of a sub-topic: the segments covered and, in Markdown, each
/// one's title with the first paragraph of its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryContent {
    /// The sub-topic's title.
    pub sub_topic_title: String,
    /// The segments covered, in order.
    pub covered: Vec<Covered>,
    /// The summary, in Markdown.
    pub text: String,
}

/// What an action carries from the course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// `teach_segment`, `repeat_segment`, `resume`: the segment.
    Segment(SegmentContent),
    /// `summarize`: the sub-topic summed up.
    Summary(SummaryContent),
}

/// A segment's title and text, as a prompt quotes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Its title.
    pub title: String,
    /// Its text (Markdown).
    pub text: String,
}

/// What grounds an answer: the segment being taught and its neighbours in
/// the course.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grounding {
    /// The course's title.
    pub course_title: String,
    /// The segment the student is on.
    pub current: Material,
    /// The one before, if any.
    pub before: Option<Material>,
    /// The one after, if any.
    pub after: Option<Material>,
}
