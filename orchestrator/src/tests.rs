use super::*;
use ActionKind as A;
use State as S;

const T0: i64 = 1_700_000_000_000;

fn lesson(total: u32) -> Lesson {
    Lesson {
        course_id: "c".into(),
        module_index: 2,
        sub_topic_index: 1,
        total_segments: total,
        segment_index: 0,
        course_version: None,
    }
}

fn new_session(total: u32) -> TeachingContext {
    start(Uuid::nil(), Uuid::nil(), lesson(total), T0).context
}

fn input(intent: Intent, text: &str) -> Input {
    Input {
        text: text.into(),
        intent,
        confused: false,
    }
}

/// Drives a session through `texts` (classified as a student's would be).
fn say(mut ctx: TeachingContext, texts: &[&str]) -> (TeachingContext, Vec<Decision>) {
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let d = decide(&ctx, &Input::new(text), T0 + 1000 * (i as i64 + 1)).unwrap();
        ctx = d.context.clone();
        out.push(d);
    }
    (ctx, out)
}

/// A context in `state`, at segment 1 of 3 (or the last, completed).
fn in_state(state: State) -> TeachingContext {
    let base = new_session(3);
    let script: &[&str] = match state {
        S::Teaching => &["next"],
        S::AnsweringQuestion => &["next", "why?"],
        S::Paused => &["next", "pause"],
        S::Completed => &["next", "next", "next"],
        S::Ended => &["end"],
    };
    let (ctx, _) = say(base, script);
    assert_eq!(ctx.state, state);
    ctx
}

#[test]
fn a_session_starts_teaching_its_first_segment() {
    let d = start(Uuid::nil(), Uuid::nil(), lesson(4), T0);
    assert_eq!(d.action.kind, A::TeachSegment);
    assert_eq!(d.context.state, S::Teaching);
    assert_eq!(d.context.seq, 0);
    assert_eq!(d.action.segment.segment_index, 0);
    assert_eq!(d.action.segment.total_segments, 4);
    assert_eq!(d.transition.from, None);
    assert_eq!(d.delta, Metrics::default());
}

/// Every cell of the module's table: (state, intent) → (action, state after).
#[test]
fn every_state_and_intent_goes_where_the_table_says() {
    use Intent as I;
    let table: &[(State, Intent, ActionKind, State)] = &[
        (
            S::Teaching,
            I::Question,
            A::AnswerQuestion,
            S::AnsweringQuestion,
        ),
        (S::Teaching, I::Continue, A::TeachSegment, S::Teaching),
        (S::Teaching, I::Skip, A::TeachSegment, S::Teaching),
        (S::Teaching, I::Repeat, A::RepeatSegment, S::Teaching),
        (S::Teaching, I::Confused, A::RepeatSegment, S::Teaching),
        (S::Teaching, I::Pause, A::Pause, S::Paused),
        (S::Teaching, I::Resume, A::Resume, S::Teaching),
        (S::Teaching, I::End, A::EndSession, S::Ended),
        (S::Teaching, I::Other, A::Acknowledge, S::Teaching),
        (
            S::AnsweringQuestion,
            I::Question,
            A::AnswerQuestion,
            S::AnsweringQuestion,
        ),
        (S::AnsweringQuestion, I::Continue, A::Resume, S::Teaching),
        (S::AnsweringQuestion, I::Skip, A::TeachSegment, S::Teaching),
        (
            S::AnsweringQuestion,
            I::Repeat,
            A::RepeatSegment,
            S::Teaching,
        ),
        (
            S::AnsweringQuestion,
            I::Confused,
            A::AnswerQuestion,
            S::AnsweringQuestion,
        ),
        (S::AnsweringQuestion, I::Pause, A::Pause, S::Paused),
        (S::AnsweringQuestion, I::Resume, A::Resume, S::Teaching),
        (S::AnsweringQuestion, I::End, A::EndSession, S::Ended),
        (
            S::AnsweringQuestion,
            I::Other,
            A::Acknowledge,
            S::AnsweringQuestion,
        ),
        (
            S::Paused,
            I::Question,
            A::AnswerQuestion,
            S::AnsweringQuestion,
        ),
        (S::Paused, I::Continue, A::Resume, S::Teaching),
        (S::Paused, I::Skip, A::TeachSegment, S::Teaching),
        (S::Paused, I::Repeat, A::RepeatSegment, S::Teaching),
        (S::Paused, I::Confused, A::RepeatSegment, S::Teaching),
        (S::Paused, I::Pause, A::Pause, S::Paused),
        (S::Paused, I::Resume, A::Resume, S::Teaching),
        (S::Paused, I::End, A::EndSession, S::Ended),
        (S::Paused, I::Other, A::Pause, S::Paused),
        (
            S::Completed,
            I::Question,
            A::AnswerQuestion,
            S::AnsweringQuestion,
        ),
        (S::Completed, I::Continue, A::Summarize, S::Completed),
        (S::Completed, I::Skip, A::Summarize, S::Completed),
        (S::Completed, I::Repeat, A::RepeatSegment, S::Teaching),
        (S::Completed, I::Confused, A::RepeatSegment, S::Teaching),
        (S::Completed, I::Pause, A::Pause, S::Paused),
        (S::Completed, I::Resume, A::Resume, S::Completed),
        (S::Completed, I::End, A::EndSession, S::Ended),
        (S::Completed, I::Other, A::Acknowledge, S::Completed),
    ];
    for state in [S::Teaching, S::AnsweringQuestion, S::Paused, S::Completed] {
        for intent in Intent::ALL {
            let row = table
                .iter()
                .find(|r| r.0 == state && r.1 == intent)
                .unwrap_or_else(|| panic!("no row for {state:?} × {intent:?}"));
            let ctx = in_state(state);
            let d = decide(&ctx, &input(intent, "some words"), T0 + 99_000).unwrap();
            assert_eq!(
                (d.action.kind, d.context.state),
                (row.2, row.3),
                "{state:?} × {intent:?}"
            );
            assert_eq!(d.context.seq, ctx.seq + 1);
            assert_eq!(d.transition.seq, d.context.seq);
            assert_eq!(d.transition.from, Some(state));
            assert_eq!(d.transition.to, d.context.state);
            assert_eq!(d.transition.action, d.action.kind);
            assert_eq!(d.transition.intent, Some(intent));
            assert_eq!(d.delta.inputs, 1);
            let interrupts = state == S::Teaching
                && matches!(intent, I::Question | I::Repeat | I::Confused | I::Pause);
            assert_eq!(
                d.delta.interruptions,
                u32::from(interrupts),
                "{state:?} × {intent:?}"
            );
        }
    }
}

#[test]
fn an_ended_session_decides_nothing() {
    let ctx = in_state(S::Ended);
    for intent in Intent::ALL {
        assert_eq!(decide(&ctx, &input(intent, "x"), T0), Err(Ended));
    }
    assert_eq!(end(&ctx, T0), Err(Ended));
}

#[test]
fn continuing_walks_the_segments_then_summarizes() {
    let (ctx, ds) = say(new_session(3), &["next", "got it", "continue", "ok"]);
    let kinds: Vec<_> = ds.iter().map(|d| d.action.kind).collect();
    assert_eq!(
        kinds,
        [A::TeachSegment, A::TeachSegment, A::Summarize, A::Summarize]
    );
    let segments: Vec<_> = ds.iter().map(|d| d.action.segment.segment_index).collect();
    assert_eq!(segments, [1, 2, 2, 2]);
    assert_eq!(ctx.segments_done, 3);
    assert_eq!(ctx.state, S::Completed);
    assert_eq!(ctx.seq, 4);
}

#[test]
fn a_question_is_answered_then_the_segment_resumes() {
    let (ctx, ds) = say(
        new_session(3),
        &[
            "What is a fraction?",
            "and what is a decimal?",
            "ok",
            "next",
        ],
    );
    assert_eq!(ds[0].action.kind, A::AnswerQuestion);
    assert_eq!(
        ds[0].action.question.as_deref(),
        Some("What is a fraction?")
    );
    assert_eq!(ds[1].action.recent_questions.len(), 2);
    assert_eq!(ds[0].delta.interruptions, 1);
    // A follow-up while answering is a question, not another interruption.
    assert_eq!(ds[1].delta.interruptions, 0);
    assert_eq!(ds[1].delta.questions_asked, 1);
    // Back to the segment the question interrupted, then on.
    assert_eq!(ds[2].action.kind, A::Resume);
    assert_eq!(ds[2].action.segment.segment_index, 0);
    assert_eq!(ds[3].action.kind, A::TeachSegment);
    assert_eq!(ctx.segment_index, 1);
}

#[test]
fn recent_questions_keep_the_latest_five() {
    let texts: Vec<String> = (1..=7).map(|i| format!("question {i}?")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (ctx, _) = say(new_session(2), &refs);
    assert_eq!(
        ctx.recent_questions,
        [
            "question 3?",
            "question 4?",
            "question 5?",
            "question 6?",
            "question 7?"
        ]
    );
}

#[test]
fn confusion_rises_caps_and_falls_as_the_student_moves_on() {
    let (ctx, ds) = say(
        new_session(5),
        &["I don't understand", "huh", "still confused", "I'm lost"],
    );
    let levels: Vec<u8> = ds.iter().map(|d| d.action.confusion_level).collect();
    assert_eq!(levels, [1, 2, 3, 3]);
    assert!(ds.iter().all(|d| d.action.kind == A::RepeatSegment));
    assert_eq!(ctx.pace(), Pace::Slower);
    let (ctx, ds) = say(ctx, &["ok", "next"]);
    assert_eq!(ds[0].action.confusion_level, 2);
    assert_eq!(ds[1].action.confusion_level, 1);
    assert_eq!(ctx.pace(), Pace::Normal);
}

#[test]
fn a_confused_question_raises_confusion_and_confusion_while_answering_reanswers() {
    let (_, ds) = say(new_session(3), &["I don't get why the sign flips", "what?"]);
    assert_eq!(ds[0].action.kind, A::AnswerQuestion);
    assert_eq!(ds[0].action.confusion_level, 1);
    assert_eq!(ds[0].delta.confusions, 1);
    assert_eq!(ds[1].action.kind, A::AnswerQuestion);
    assert_eq!(
        ds[1].action.question.as_deref(),
        Some("I don't get why the sign flips")
    );
    assert_eq!(ds[1].action.confusion_level, 2);
}

#[test]
fn pace_follows_repeats_and_skips() {
    let (ctx, _) = say(new_session(6), &["repeat", "again"]);
    assert_eq!(ctx.repeats_in_segment, 2);
    assert_eq!(ctx.pace(), Pace::Slower);
    let (ctx, _) = say(ctx, &["skip"]);
    assert_eq!(ctx.repeats_in_segment, 0);
    assert_eq!(ctx.pace(), Pace::Normal);
    let (ctx, ds) = say(ctx, &["skip"]);
    assert_eq!(ctx.pace(), Pace::Faster);
    assert_eq!(ds[0].action.pace, Pace::Faster);
    assert_eq!(ds[0].delta.skips, 1);
    let (ctx, _) = say(ctx, &["next"]);
    assert_eq!(ctx.pace(), Pace::Normal);
}

#[test]
fn pause_and_resume_return_to_where_the_lesson_was() {
    let (ctx, ds) = say(
        new_session(2),
        &["next", "hold on", "whatever", "hello?", "I'm back"],
    );
    assert_eq!(ds[1].action.kind, A::Pause);
    assert_eq!(ds[1].delta.pauses, 1);
    // A remark keeps the pause (not counted again); a question is answered.
    assert_eq!(ds[2].action.kind, A::Pause);
    assert_eq!(ds[2].delta.pauses, 0);
    assert_eq!(ds[3].action.kind, A::AnswerQuestion);
    assert_eq!(ds[4].action.kind, A::Resume);
    assert_eq!(ctx.state, S::Teaching);
    assert_eq!(ctx.segment_index, 1);
    // After the last segment, a resume goes back to completed.
    let (ctx, _) = say(ctx, &["next", "pause", "resume"]);
    assert_eq!(ctx.state, S::Completed);
}

#[test]
fn a_repeat_after_completion_reteaches_the_last_segment_without_recounting_it() {
    let (ctx, ds) = say(new_session(2), &["next", "next", "repeat", "next"]);
    assert_eq!(ds[2].action.kind, A::RepeatSegment);
    assert_eq!(ds[2].action.segment.segment_index, 1);
    assert_eq!(ds[3].action.kind, A::Summarize);
    assert_eq!(ctx.segments_done, 2);
    assert!(ctx.all_done());
}

#[test]
fn end_is_the_same_step_as_saying_end() {
    let ctx = in_state(S::AnsweringQuestion);
    let by_endpoint = end(&ctx, T0).unwrap();
    let by_word = decide(&ctx, &Input::new("bye"), T0).unwrap();
    assert_eq!(by_endpoint.context, by_word.context);
    assert_eq!(by_endpoint.action, by_word.action);
    assert_eq!(by_endpoint.action.kind, A::EndSession);
    // Only the spoken one counts as an input.
    assert_eq!(by_endpoint.delta.inputs, 0);
    assert_eq!(by_word.delta.inputs, 1);
    assert_eq!(by_endpoint.transition.input, None);
}

#[test]
fn metrics_add_up_and_give_the_interruption_rate() {
    let (_, ds) = say(
        new_session(4),
        &[
            "why?", "ok", "repeat", "next", "pause", "resume", "skip", "next",
        ],
    );
    let mut m = Metrics::default();
    for d in &ds {
        m.add(&d.delta);
    }
    assert_eq!(
        m,
        Metrics {
            inputs: 8,
            questions_asked: 1,
            interruptions: 3,
            repeats: 1,
            skips: 1,
            confusions: 0,
            pauses: 1,
        }
    );
    assert_eq!(m.interruption_rate(), 3.0 / 8.0);
    assert_eq!(Metrics::default().interruption_rate(), 0.0);
    let back = Metrics::from_fields(m.fields());
    assert_eq!(back, m);
}

#[test]
fn the_context_round_trips_through_json() {
    let (ctx, _) = say(new_session(3), &["why?", "I'm confused", "skip"]);
    let json = serde_json::to_string(&ctx).unwrap();
    assert_eq!(serde_json::from_str::<TeachingContext>(&json).unwrap(), ctx);
}

#[test]
fn long_questions_are_kept_to_their_limit() {
    let long = "why ".repeat(600);
    let (ctx, _) = say(new_session(2), &[&long]);
    assert_eq!(ctx.recent_questions[0].chars().count(), QUESTION_CHARS);
}

#[test]
fn a_session_can_begin_mid_sub_topic_and_completes_only_what_is_continued_past() {
    let mid = Lesson {
        segment_index: 2,
        course_version: Some(4),
        ..lesson(4)
    };
    let d0 = start(Uuid::nil(), Uuid::nil(), mid, T0);
    assert_eq!(d0.context.segment_index, 2);
    assert_eq!(d0.context.course_version, Some(4));
    assert_eq!(d0.transition.segment_index, 2);
    assert_eq!(d0.completed, None);
    let continued = decide(&d0.context, &input(Intent::Continue, "next"), T0 + 1).unwrap();
    assert_eq!(continued.completed, Some(2));
    assert_eq!(continued.action.kind, A::TeachSegment);
    let skipped = decide(&continued.context, &input(Intent::Skip, "skip"), T0 + 2).unwrap();
    assert_eq!(skipped.completed, None);
    assert_eq!(skipped.action.kind, A::Summarize);
    assert_eq!(skipped.context.state, S::Completed);
    // A start past the end begins at the last segment.
    let late = Lesson {
        segment_index: 9,
        ..lesson(4)
    };
    assert_eq!(
        start(Uuid::nil(), Uuid::nil(), late, T0)
            .context
            .segment_index,
        3
    );
}
