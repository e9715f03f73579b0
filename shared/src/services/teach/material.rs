//! The lesson material of a session's actions: the segment an action
//! teaches, the summary of a sub-topic, and what grounds an answer — read
//! from the course version the session started on.

use lectern_orchestrator::content::{Covered, SegmentContent, SummaryContent};
use lectern_orchestrator::{Action, ActionKind, Content, Grounding, Material, TeachingContext};

use crate::services::courses::{CourseDoc, Position};

/// Puts the material of `action` (decided on `ctx`) in it: the segment for
/// `teach_segment`, `repeat_segment` and `resume`, the sub-topic's summary for
/// `summarize`; nothing for the others, or when the course has no such place.
pub fn fill(doc: &CourseDoc, ctx: &TeachingContext, action: &mut Action) {
    action.content = match action.kind {
        ActionKind::TeachSegment | ActionKind::RepeatSegment | ActionKind::Resume => {
            segment(doc, ctx).map(Content::Segment)
        }
        ActionKind::Summarize => summary(doc, ctx).map(Content::Summary),
        _ => None,
    };
}

fn segment(doc: &CourseDoc, ctx: &TeachingContext) -> Option<SegmentContent> {
    let module = doc.modules.get(ctx.module_index as usize)?;
    let sub = module.sub_topics.get(ctx.sub_topic_index as usize)?;
    let seg = sub.segments.get(ctx.segment_index as usize)?;
    Some(SegmentContent {
        key: seg.key.clone(),
        module_title: module.title.clone(),
        sub_topic_title: sub.title.clone(),
        title: seg.title.clone(),
        text: seg.text.clone(),
        check_questions: seg.check_questions.clone(),
    })
}

/// The sub-topic's segments up to the last one moved past, each with the
/// first paragraph of its text.
fn summary(doc: &CourseDoc, ctx: &TeachingContext) -> Option<SummaryContent> {
    let sub = doc.sub_topic(ctx.module_index, ctx.sub_topic_index)?;
    let covered = &sub.segments[..(ctx.segments_done as usize).min(sub.segments.len())];
    let mut text = format!("## {}\n", sub.title);
    for s in covered {
        let first = s.text.split("\n\n").next().unwrap_or_default().trim();
        text.push_str(&format!(
            "\n- **{}**: {}",
            s.title,
            first.replace('\n', " ")
        ));
    }
    Some(SummaryContent {
        sub_topic_title: sub.title.clone(),
        covered: covered
            .iter()
            .map(|s| Covered {
                key: s.key.clone(),
                title: s.title.clone(),
            })
            .collect(),
        text,
    })
}

/// What grounds an answer given at `ctx`: the current segment and its
/// neighbours in the course.
pub fn grounding(doc: &CourseDoc, ctx: &TeachingContext) -> Grounding {
    let at = Position {
        module_index: ctx.module_index,
        sub_topic_index: ctx.sub_topic_index,
        segment_index: ctx.segment_index,
    };
    let material = |s: &crate::services::courses::content::Segment| Material {
        title: s.title.clone(),
        text: s.text.clone(),
    };
    let (before, after) = doc.neighbours(at);
    Grounding {
        course_title: doc.title.clone(),
        current: doc.segment(at).map(material).unwrap_or(Material {
            title: String::new(),
            text: String::new(),
        }),
        before: before.map(material),
        after: after.map(material),
    }
}
