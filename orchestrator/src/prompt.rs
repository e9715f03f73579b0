//! The prompt for a language model that answers a student's question, built
//! from an [`Action`]'s pedagogical context. Bump [`TEMPLATE_VERSION`] with
//! any change to the wording: cached answers of the old wording are then not
//! reused.

use serde::Serialize;

use super::{Action, Pace};

/// Version of the wording below.
pub const TEMPLATE_VERSION: u32 = 1;

/// One message of a chat prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptMessage {
    /// `system` or `user`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// The messages that ask for an answer to `action`'s question: a system
/// message with where the student is, their earlier questions, their
/// confusion and pace, then the question as they wrote it.
pub fn answer_question(action: &Action) -> Vec<PromptMessage> {
    let s = &action.segment;
    let mut system = format!(
        "You are a patient tutor. The student is learning course {:?}, module {}, \
         sub-topic {}, segment {} of {}. Answer their question about this material \
         accurately in a few sentences, then invite them to go on with the lesson.",
        s.course_id,
        s.module_index + 1,
        s.sub_topic_index + 1,
        s.segment_index + 1,
        s.total_segments,
    );
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
        }
    }

    #[test]
    fn the_prompt_carries_where_the_student_is_and_the_question() {
        let messages = answer_question(&action(0, Pace::Normal, &["why does x^0 = 1?"]));
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
        let system = &answer_question(&a)[0].content;
        assert!(system.contains("earlier questions in this session:\n- what is a power?"));
        assert!(system.contains("confusion (level 2 of 3)"));
        assert!(system.ends_with("Go slowly."));
        let fast = answer_question(&action(0, Pace::Faster, &[]));
        assert!(fast[0].content.ends_with("be brief."));
    }
}
