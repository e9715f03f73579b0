//! The prompt for a language model that answers a student's question, built
//! from an [`Action`]'s pedagogical context and, on a course with content,
//! the lesson material. Bump [`TEMPLATE_VERSION`] with any change to the
//! wording: cached answers of the old wording are then not reused.
//!
//! Version 2 grounds the answer: the system message quotes the segment being
//! taught and its neighbours, and asks for an answer from that material. A
//! grounded prompt leaves out the session's earlier questions: the answer is
//! then about the question and the material alone, so it can serve another
//! student who asks the same (the semantic answer cache); confusion and pace
//! stay, and an answer is reused only for the same [`style`].

use serde::Serialize;

use super::{Action, Grounding, Material, Pace};

/// Version of the wording below.
pub const TEMPLATE_VERSION: u32 = 2;

/// Longest quote of a neighbouring segment, in characters (the current one is whole).
pub const NEIGHBOUR_CHARS: usize = 1_500;

/// One message of a chat prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptMessage {
    /// `system` or `user`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// How an answer is pitched: what the personal parts of the prompt
/// (confusion and pace) amount to. Answers are shared only within a style.
pub fn style(action: &Action) -> &'static str {
    if action.confusion_level > 0 || action.pace == Pace::Slower {
        "plain"
    } else if action.pace == Pace::Faster {
        "brief"
    } else {
        "normal"
    }
}

fn quote(out: &mut String, label: &str, m: &Material, max: Option<usize>) {
    let text = match max {
        Some(max) => match m.text.char_indices().nth(max) {
            Some((cut, _)) => format!("{}…", &m.text[..cut]),
            None => m.text.clone(),
        },
        None => m.text.clone(),
    };
    out.push_str(&format!("\n\n{label}: {}\n<<<\n{text}\n>>>", m.title));
}

/// The messages that ask for an answer to `action`'s question: a system
/// message with where the student is (and, when `grounding` is given, the
/// lesson material to answer from), their confusion and pace (and, without
/// grounding, their earlier questions), then the question as they wrote it.
pub fn answer_question(action: &Action, grounding: Option<&Grounding>) -> Vec<PromptMessage> {
    let s = &action.segment;
    let mut system = match grounding {
        Some(g) => format!(
            "You are a patient tutor. The student is learning the course {:?}, module {}, \
             sub-topic {}, segment {} of {}. Answer their question from the lesson material \
             below, accurately, in a few sentences; if the material does not cover it, say so \
             briefly and answer from general knowledge. Then invite them to go on with the lesson.",
            g.course_title,
            s.module_index + 1,
            s.sub_topic_index + 1,
            s.segment_index + 1,
            s.total_segments,
        ),
        None => format!(
            "You are a patient tutor. The student is learning course {:?}, module {}, \
             sub-topic {}, segment {} of {}. Answer their question about this material \
             accurately in a few sentences, then invite them to go on with the lesson.",
            s.course_id,
            s.module_index + 1,
            s.sub_topic_index + 1,
            s.segment_index + 1,
            s.total_segments,
        ),
    };
    match grounding {
        Some(g) => {
            quote(&mut system, "The segment being taught", &g.current, None);
            if let Some(before) = &g.before {
                quote(
                    &mut system,
                    "The segment before",
                    before,
                    Some(NEIGHBOUR_CHARS),
                );
            }
            if let Some(after) = &g.after {
                quote(
                    &mut system,
                    "The segment after",
                    after,
                    Some(NEIGHBOUR_CHARS),
                );
            }
        }
        None => {
            let earlier: Vec<&String> = match action.question.as_ref() {
                Some(q) => action.recent_questions.iter().filter(|r| *r != q).collect(),
                None => action.recent_questions.iter().collect(),
            };
            if !earlier.is_empty() {
                system.push_str("\nTheir earlier questions in this session:");
                for q in earlier {
                    system.push_str("\n- ");
                    system.push_str(q);
                }
            }
        }
    }
    if action.confusion_level > 0 {
        system.push_str(&format!(
            "\nThey have shown confusion (level {} of 3): use plain words, one idea at a time, and a concrete example.",
            action.confusion_level
        ));
    }
    match action.pace {
        Pace::Slower => system.push_str("\nGo slowly."),
        Pace::Faster => system.push_str("\nThey are moving fast: be brief."),
        Pace::Normal => {}
    }
    vec![
        PromptMessage {
            role: "system",
            content: system,
        },
        PromptMessage {
            role: "user",
            content: action.question.clone().unwrap_or_default(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActionKind, Segment};

    fn action(confusion: u8, pace: Pace, recent: &[&str]) -> Action {
        Action {
            kind: ActionKind::AnswerQuestion,
            segment: Segment {
                course_id: "algebra-1".into(),
                module_index: 1,
                sub_topic_index: 0,
                segment_index: 2,
                total_segments: 6,
                segments_done: 2,
            },
            question: Some("why does x^0 = 1?".into()),
            recent_questions: recent.iter().map(|s| s.to_string()).collect(),
            confusion_level: confusion,
            pace,
            content: None,
        }
    }

    #[test]
    fn the_prompt_carries_where_the_student_is_and_the_question() {
        let messages = answer_question(&action(0, Pace::Normal, &["why does x^0 = 1?"]), None);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].role, "system");
        let system = &messages[0].content;
        assert!(system.contains("\"algebra-1\", module 2, sub-topic 1, segment 3 of 6"));
        // The question itself is the user's message, not an "earlier" one.
        assert!(!system.contains("earlier"));
        assert!(!system.contains("confusion"));
        assert_eq!(messages[1].role, "user");
        assert_eq!(messages[1].content, "why does x^0 = 1?");
    }

    #[test]
    fn earlier_questions_confusion_and_pace_shape_the_system_message() {
        let a = action(2, Pace::Slower, &["what is a power?", "why does x^0 = 1?"]);
        let system = &answer_question(&a, None)[0].content;
        assert!(system.contains("earlier questions in this session:\n- what is a power?"));
        assert!(system.contains("confusion (level 2 of 3)"));
        assert!(system.ends_with("Go slowly."));
        let fast = answer_question(&action(0, Pace::Faster, &[]), None);
        assert!(fast[0].content.ends_with("be brief."));
    }

    #[test]
    fn a_grounded_prompt_quotes_the_material_and_not_earlier_questions() {
        let g = Grounding {
            course_title: "Exponents".into(),
            current: Material {
                title: "Zero".into(),
                text: "Any non-zero x to the power 0 is 1.".into(),
            },
            before: Some(Material {
                title: "Powers".into(),
                text: "p".repeat(NEIGHBOUR_CHARS + 10),
            }),
            after: None,
        };
        let a = action(1, Pace::Normal, &["what is a power?", "why does x^0 = 1?"]);
        let messages = answer_question(&a, Some(&g));
        let system = &messages[0].content;
        assert!(system.contains("course \"Exponents\", module 2, sub-topic 1, segment 3 of 6"));
        assert!(system.contains(
            "The segment being taught: Zero\n<<<\nAny non-zero x to the power 0 is 1.\n>>>"
        ));
        // A neighbour is quoted up to its limit, then cut.
        assert!(system.contains(&format!("{}…", "p".repeat(NEIGHBOUR_CHARS))));
        assert!(!system.contains(&"p".repeat(NEIGHBOUR_CHARS + 1)));
        assert!(!system.contains("segment after"));
        assert!(!system.contains("what is a power?"));
        assert!(system.contains("confusion (level 1 of 3)"));
        assert_eq!(messages[1].content, "why does x^0 = 1?");
        assert_eq!(style(&a), "plain");
        assert_eq!(style(&action(0, Pace::Faster, &[])), "brief");
        assert_eq!(style(&action(0, Pace::Normal, &[])), "normal");
    }
}
