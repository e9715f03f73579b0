//! A course as a document: modules → sub-topics → segments, each segment with
//! its teaching text (Markdown) and optional check questions. The same shape
//! is written to the API, imported from a file and stored (one JSONB value per
//! version). [`CourseDoc::check`] validates it and names the field at fault.

use serde::{Deserialize, Serialize};

pub use lectern_orchestrator::{CheckQuestion, ItemRef};

/// Longest course or segment key, in characters.
pub const MAX_KEY_CHARS: usize = 100;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest segment text, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest check question, in characters.
pub const MAX_QUESTION_CHARS: usize = 2_000;
/// Most modules in a course, and sub-topics in a module.
pub const MAX_PARTS: usize = 100;
/// Most segments in a sub-topic.
pub const MAX_SEGMENTS: usize = 1_000;
/// Most segments in a course.
pub const MAX_COURSE_SEGMENTS: usize = 5_000;
/// Most check questions of a segment.
pub const MAX_CHECK_QUESTIONS: usize = 10;

/// A course: what staff write, import and edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseDoc {
    /// Its name in the organization (`algebra-1`): a re-import of the same
    /// key writes a new version. Lowercase letters, digits, `.`, `_`, `-`.
    pub key: String,
    /// Its title.
    pub title: String,
    /// What it is about.
    #[serde(
        default,
        deserialize_with = "crate::wire::some",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// Its modules, in teaching order.
    pub modules: Vec<Module>,
}

/// A module of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Its title.
    pub title: String,
    /// Its sub-topics, in order.
    pub sub_topics: Vec<SubTopic>,
}

/// A sub-topic of a module: what one tutoring session teaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubTopic {
    /// Its title.
    pub title: String,
    /// Its segments, in order.
    pub segments: Vec<Segment>,
}

/// One segment: a piece taught at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Its key, unique in the course and kept across versions (progress
    /// counts completed segments by key). Absent: `<module>.<sub-topic>.<segment>`
    /// numbered from 1.
    #[serde(default)]
    pub key: String,
    /// Its title.
    pub title: String,
    /// What is taught, in Markdown.
    pub text: String,
    /// Questions that check the student followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_questions: Vec<CheckQuestion>,
}

/// Where a segment is: module, sub-topic and segment, 0-based.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// Module.
    pub module_index: u32,
    /// Sub-topic of the module.
    pub sub_topic_index: u32,
    /// Segment of the sub-topic.
    pub segment_index: u32,
}

/// Why a document is refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// Its path, as `modules[0].sub_topics[1].segments[2].text`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A key: 1 to [`MAX_KEY_CHARS`] of `a-z 0-9 . _ -`.
fn check_key(field: &str, key: &str) -> Result<(), Invalid> {
    let ok = (1..=MAX_KEY_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9, '.', '_' and '-'"),
        ))
    }
}

/// Text of 1 to `max` characters, not blank, without control characters
/// other than line breaks and tabs; trimmed.
fn check_text(field: &str, text: &mut String, max: usize) -> Result<(), Invalid> {
    let trimmed = text.trim();
    let n = trimmed.chars().count();
    if n == 0 || n > max {
        return Err(invalid(
            field,
            format!("must be 1 to {max} characters, not blank"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    *text = trimmed.to_owned();
    Ok(())
}

fn check_count(field: &str, n: usize, max: usize) -> Result<(), Invalid> {
    if (1..=max).contains(&n) {
        Ok(())
    } else {
        Err(invalid(field, format!("must hold 1 to {max} entries")))
    }
}

impl CourseDoc {
    /// Validates the document, trims its texts and gives every segment its
    /// key; the first fault found is named.
    pub fn check(&mut self) -> Result<(), Invalid> {
        self.key = self.key.trim().to_owned();
        check_key("key", &self.key)?;
        check_text("title", &mut self.title, MAX_TITLE_CHARS)?;
        if let Some(d) = &mut self.description {
            check_text("description", d, MAX_TEXT_CHARS)?;
        }
        check_count("modules", self.modules.len(), MAX_PARTS)?;
        let mut keys = std::collections::HashSet::new();
        let mut total = 0;
        for (m, module) in self.modules.iter_mut().enumerate() {
            let at = format!("modules[{m}]");
            check_text(&format!("{at}.title"), &mut module.title, MAX_TITLE_CHARS)?;
            check_count(
                &format!("{at}.sub_topics"),
                module.sub_topics.len(),
                MAX_PARTS,
            )?;
            for (s, sub) in module.sub_topics.iter_mut().enumerate() {
                let at = format!("{at}.sub_topics[{s}]");
                check_text(&format!("{at}.title"), &mut sub.title, MAX_TITLE_CHARS)?;
                check_count(&format!("{at}.segments"), sub.segments.len(), MAX_SEGMENTS)?;
                for (g, seg) in sub.segments.iter_mut().enumerate() {
                    let at = format!("{at}.segments[{g}]");
                    total += 1;
                    if total > MAX_COURSE_SEGMENTS {
                        return Err(invalid(
                            at,
                            format!("a course holds at most {MAX_COURSE_SEGMENTS} segments"),
                        ));
                    }
                    seg.key = seg.key.trim().to_owned();
                    if seg.key.is_empty() {
                        seg.key = format!("{}.{}.{}", m + 1, s + 1, g + 1);
                    }
                    check_key(&format!("{at}.key"), &seg.key)?;
                    if !keys.insert(seg.key.clone()) {
                        return Err(invalid(
                            format!("{at}.key"),
                            format!("{:?} names another segment of the course too", seg.key),
                        ));
                    }
                    check_text(&format!("{at}.title"), &mut seg.title, MAX_TITLE_CHARS)?;
                    check_text(&format!("{at}.text"), &mut seg.text, MAX_TEXT_CHARS)?;
                    if seg.check_questions.len() > MAX_CHECK_QUESTIONS {
                        return Err(invalid(
                            format!("{at}.check_questions"),
                            format!("must hold at most {MAX_CHECK_QUESTIONS} entries"),
                        ));
                    }
                    for (q, question) in seg.check_questions.iter_mut().enumerate() {
                        let at = format!("{at}.check_questions[{q}]");
                        check_text(
                            &format!("{at}.text"),
                            &mut question.text,
                            MAX_QUESTION_CHARS,
                        )?;
                        if let Some(item) = &question.item {
                            let n = item.item_id.chars().count();
                            if n == 0 || n > MAX_KEY_CHARS {
                                return Err(invalid(
                                    format!("{at}.item.item_id"),
                                    format!("must be 1 to {MAX_KEY_CHARS} characters"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Segments in the course.
    pub fn segment_count(&self) -> usize {
        self.modules
            .iter()
            .flat_map(|m| &m.sub_topics)
            .map(|s| s.segments.len())
            .sum()
    }

    /// Every item a check question references, with its field path.
    pub fn item_refs(&self) -> Vec<(String, &ItemRef)> {
        let mut out = Vec::new();
        for (m, module) in self.modules.iter().enumerate() {
            for (s, sub) in module.sub_topics.iter().enumerate() {
                for (g, seg) in sub.segments.iter().enumerate() {
                    for (q, question) in seg.check_questions.iter().enumerate() {
                        if let Some(item) = &question.item {
                            out.push((
                                format!(
                                    "modules[{m}].sub_topics[{s}].segments[{g}].check_questions[{q}].item"
                                ),
                                item,
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// The sub-topic at a position, if there is one.
    pub fn sub_topic(&self, module: u32, sub_topic: u32) -> Option<&SubTopic> {
        self.modules
            .get(module as usize)?
            .sub_topics
            .get(sub_topic as usize)
    }

    /// The segment at a position, if there is one.
    pub fn segment(&self, at: Position) -> Option<&Segment> {
        self.sub_topic(at.module_index, at.sub_topic_index)?
            .segments
            .get(at.segment_index as usize)
    }

    /// Every segment with its position, in teaching order.
    pub fn positions(&self) -> impl Iterator<Item = (Position, &Segment)> {
        self.modules.iter().enumerate().flat_map(|(m, module)| {
            module
                .sub_topics
                .iter()
                .enumerate()
                .flat_map(move |(s, sub)| {
                    sub.segments.iter().enumerate().map(move |(g, seg)| {
                        (
                            Position {
                                module_index: m as u32,
                                sub_topic_index: s as u32,
                                segment_index: g as u32,
                            },
                            seg,
                        )
                    })
                })
        })
    }

    /// The segments before and after a position in teaching order (across
    /// sub-topics and modules), when there are.
    pub fn neighbours(&self, at: Position) -> (Option<&Segment>, Option<&Segment>) {
        let mut before = None;
        let mut walk = self.positions();
        for (p, s) in walk.by_ref() {
            if p == at {
                return (before, walk.next().map(|(_, s)| s));
            }
            before = Some(s);
        }
        (None, None)
    }

    /// The first segment of the sub-topic after the one of `at` (`None`
    /// after the course's last).
    pub fn next_sub_topic(&self, at: Position) -> Option<Position> {
        self.positions()
            .map(|(p, _)| p)
            .find(|p| (p.module_index, p.sub_topic_index) > (at.module_index, at.sub_topic_index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> CourseDoc {
        serde_json::from_value(serde_json::json!({
            "key": "exponents",
            "title": " Exponents ",
            "modules": [
                {"title": "Powers", "sub_topics": [
                    {"title": "Basics", "segments": [
                        {"title": "What a power is", "text": "x^n is x times itself n times."},
                        {"key": "zero", "title": "Zero", "text": "x^0 = 1.",
                         "check_questions": [{"text": "What is 7^0?"}]}
                    ]},
                    {"title": "Rules", "segments": [
                        {"title": "Products", "text": "x^a x^b = x^(a+b)."}
                    ]}
                ]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_course_is_trimmed_and_keyed() {
        let mut d = doc();
        d.check().unwrap();
        assert_eq!(d.title, "Exponents");
        let keys: Vec<&str> = d.positions().map(|(_, s)| s.key.as_str()).collect();
        assert_eq!(keys, ["1.1.1", "zero", "1.2.1"]);
        assert_eq!(d.segment_count(), 3);
    }

    #[test]
    fn faults_name_their_field() {
        let mut d = doc();
        d.modules[0].sub_topics[1].segments[0].text = "  ".into();
        let e = d.check().unwrap_err();
        assert_eq!(e.field, "modules[0].sub_topics[1].segments[0].text");

        let mut d = doc();
        d.modules[0].sub_topics[0].segments[0].key = "zero".into();
        assert_eq!(
            d.check().unwrap_err().field,
            "modules[0].sub_topics[0].segments[1].key"
        );

        let mut d = doc();
        d.key = "Not A Slug".into();
        assert_eq!(d.check().unwrap_err().field, "key");

        let mut d = doc();
        d.modules[0].sub_topics.clear();
        assert_eq!(d.check().unwrap_err().field, "modules[0].sub_topics");
    }

    #[test]
    fn null_is_not_an_absent_field() {
        let mut doc = serde_json::to_value(doc()).unwrap();
        doc["description"] = serde_json::Value::Null;
        assert!(serde_json::from_value::<CourseDoc>(doc.clone()).is_err());
        doc.as_object_mut().unwrap().remove("description");
        doc["modules"][0]["sub_topics"][0]["segments"][1]["check_questions"][0]["item"] =
            serde_json::Value::Null;
        assert!(serde_json::from_value::<CourseDoc>(doc).is_err());
    }

    #[test]
    fn neighbours_cross_sub_topics_and_the_next_sub_topic_is_found() {
        let mut d = doc();
        d.check().unwrap();
        let at = |m, s, g| Position {
            module_index: m,
            sub_topic_index: s,
            segment_index: g,
        };
        let (before, after) = d.neighbours(at(0, 0, 1));
        assert_eq!(before.unwrap().key, "1.1.1");
        assert_eq!(after.unwrap().key, "1.2.1");
        assert_eq!(d.neighbours(at(0, 0, 0)).0, None);
        assert_eq!(d.next_sub_topic(at(0, 0, 1)), Some(at(0, 1, 0)));
        assert_eq!(d.next_sub_topic(at(0, 1, 0)), None);
    }
}
