//! A simulated student's tutoring session (with `teach`): start one on the
//! run's course (module 0, sub-topic 0: the whole sub-topic of `segments`
//! segments, see [`crate::setup`]), say the lines of [`SCRIPT`] in turn until
//! it is completed, end it, and hold every reply to what the API promises.

use std::sync::atomic::Ordering;

use hyper::Method;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Abort, Student};
use crate::report::Endpoint;

/// What a simulated student says, one line per input, in turn from a random
/// line and round again: mostly "next", and once each every other intent but
/// `end` (a session is ended by its endpoint). Each pass moves on 9 segments,
/// so a session of S segments is completed within 2·S + `SCRIPT.len()` inputs.
pub const SCRIPT: &[&str] = &[
    "next",                 // continue
    "next",                 // continue
    "What is a fraction?",  // question: answer_question
    "next",                 // continue: resumes after the answer
    "next",                 // continue
    "can you repeat that?", // repeat
    "next",                 // continue
    "ok",                   // continue
    "I don't understand",   // confused: the segment again
    "next",                 // continue
    "hold on",              // pause
    "I'm back",             // resume
    "next",                 // continue
    "skip",                 // skip
    "my cat likes this",    // other: acknowledge
    "next",                 // continue
];

/// `context` of a reply (the fields checked).
#[derive(Deserialize)]
struct Context {
    session_id: Uuid,
    state: String,
    seq: u32,
    segments_done: u32,
    total_segments: u32,
}

/// `action` of a reply.
#[derive(Deserialize)]
struct Action {
    #[serde(rename = "type")]
    kind: String,
}

/// The answer to a new session or an input.
#[derive(Deserialize)]
struct Step {
    session_id: Uuid,
    intent: Option<String>,
    context: Context,
    action: Action,
}

/// The end's summary (the fields checked).
#[derive(Deserialize)]
struct Summary {
    segments_done: u32,
    total_segments: u32,
    questions_asked: u32,
    repeats: u32,
    skips: u32,
    interruptions: u32,
    interruption_rate: f64,
    inputs: u32,
}

/// What the replies said the inputs were, for the summary's check.
#[derive(Default)]
struct Said {
    inputs: u32,
    questions: u32,
    repeats: u32,
    skips: u32,
}

impl Said {
    fn count(&mut self, intent: &str) {
        self.inputs += 1;
        match intent {
            "question" => self.questions += 1,
            "repeat" => self.repeats += 1,
            "skip" => self.skips += 1,
            _ => {}
        }
    }
}

/// The reply is about session `id`, its context too.
fn check_ids(step: &Step, id: Uuid) -> Result<(), String> {
    if step.session_id != id || step.context.session_id != id {
        return Err(format!(
            "a reply about session {} (context {}) to session {id}",
            step.session_id, step.context.session_id
        ));
    }
    Ok(())
}

fn check_start(step: &Step, segments: u32) -> Result<(), String> {
    let c = &step.context;
    if (
        c.state.as_str(),
        c.seq,
        c.segments_done,
        step.action.kind.as_str(),
    ) != ("teaching", 0, 0, "teach_segment")
    {
        return Err(format!(
            "a new session in state {:?} at seq {} ({} segments done), action {:?}",
            c.state, c.seq, c.segments_done, step.action.kind
        ));
    }
    if c.total_segments != segments || step.intent.is_some() {
        return Err(format!(
            "a new session of {} segments (the course's sub-topic has {segments}), intent {:?}",
            c.total_segments, step.intent
        ));
    }
    Ok(())
}

/// The summary counts what was sent and the replies said.
fn check_summary(s: &Summary, said: &Said, segments: u32) -> Result<(), String> {
    let got = (s.inputs, s.questions_asked, s.repeats, s.skips);
    let sent = (said.inputs, said.questions, said.repeats, said.skips);
    if got != sent {
        return Err(format!(
            "summary counts (inputs, questions, repeats, skips) {got:?}, sent {sent:?}"
        ));
    }
    if (s.segments_done, s.total_segments) != (segments, segments) {
        return Err(format!(
            "summary of {}/{} segments done, completed with {segments}",
            s.segments_done, s.total_segments
        ));
    }
    let rate = f64::from(s.interruptions) / f64::from(s.inputs.max(1));
    if s.interruptions > s.inputs || (s.interruption_rate - rate).abs() > 1e-9 {
        return Err(format!(
            "interruption_rate {} with {} interruptions in {} inputs",
            s.interruption_rate, s.interruptions, s.inputs
        ));
    }
    Ok(())
}

impl Student {
    /// One whole tutoring session: start, input until completed, end. `open`
    /// is the path of its `end` while it is open.
    pub(super) async fn hold_session(&mut self, open: &mut Option<String>) -> Result<(), Abort> {
        let segments = self.shared.config.segments;
        let course = self.shared.course.expect("teach sets up a course");
        // Explicit: every session teaches the whole sub-topic from its first
        // segment, rather than resuming where the student's progress left off.
        let body = json!({
            "course_id": course,
            "module_index": 0,
            "sub_topic_index": 0,
        });
        let (started, _): (Step, _) = self
            .call(
                Endpoint::TeachStart,
                Method::POST,
                "/v1/teaching/sessions",
                Some(body),
                |s: &Step| check_start(s, segments),
            )
            .await?;
        let id = started.session_id;
        let base = format!("/v1/teaching/sessions/{id}");
        *open = Some(format!("{base}/end"));
        let path = format!("{base}/input");
        let max_inputs = 2 * segments + SCRIPT.len() as u32;
        let (mut seq, mut done) = (started.context.seq, started.context.segments_done);
        let mut said = Said::default();
        let mut line = rand::random_range(0..SCRIPT.len());
        loop {
            let text = SCRIPT[line];
            line = (line + 1) % SCRIPT.len();
            let n = said.inputs + 1;
            let (step, _): (Step, _) = self
                .call(
                    Endpoint::TeachInput,
                    Method::POST,
                    &path,
                    Some(json!({ "text": text })),
                    |s: &Step| {
                        check_ids(s, id)?;
                        let c = &s.context;
                        if c.seq != seq + 1 {
                            return Err(format!("seq {} after seq {seq}", c.seq));
                        }
                        let Some(intent) = s.intent.as_deref() else {
                            return Err(format!("no intent for {text:?}"));
                        };
                        if intent == "question" && s.action.kind != "answer_question" {
                            return Err(format!("the question {text:?} got {:?}", s.action.kind));
                        }
                        if c.segments_done < done || c.segments_done > c.total_segments {
                            return Err(format!(
                                "{}/{} segments done after {done}",
                                c.segments_done, c.total_segments
                            ));
                        }
                        match c.state.as_str() {
                            "completed" if c.segments_done == segments => Ok(()),
                            "completed" => Err(format!(
                                "completed with {}/{segments} segments done",
                                c.segments_done
                            )),
                            "teaching" | "answering_question" | "paused" if n >= max_inputs => {
                                Err(format!("still {} after {n} inputs", c.state))
                            }
                            "teaching" | "answering_question" | "paused" => Ok(()),
                            "ended" => Err(format!("{text:?} ended the session")),
                            other => Err(format!("unexpected state {other:?}")),
                        }
                    },
                )
                .await?;
            said.count(step.intent.as_deref().unwrap_or_default());
            (seq, done) = (step.context.seq, step.context.segments_done);
            if step.context.state == "completed" {
                break;
            }
        }
        let (_, measured): (Summary, _) = self
            .call(
                Endpoint::TeachEnd,
                Method::POST,
                &format!("{base}/end"),
                None,
                |s: &Summary| check_summary(s, &said, segments),
            )
            .await?;
        *open = None;
        self.shared
            .live
            .tests_completed
            .fetch_add(1, Ordering::Relaxed);
        if measured {
            self.tally.sessions_completed += 1;
            self.tally.inputs_in_completed += u64::from(said.inputs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_held_to_what_was_sent() {
        let said = Said {
            inputs: 14,
            questions: 1,
            repeats: 1,
            skips: 1,
        };
        let mut s = Summary {
            segments_done: 8,
            total_segments: 8,
            questions_asked: 1,
            repeats: 1,
            skips: 1,
            interruptions: 4,
            interruption_rate: 4.0 / 14.0,
            inputs: 14,
        };
        assert_eq!(check_summary(&s, &said, 8), Ok(()));
        s.inputs = 13;
        s.interruption_rate = 4.0 / 13.0;
        let e = check_summary(&s, &said, 8).unwrap_err();
        assert!(e.contains("(13, 1, 1, 1), sent (14, 1, 1, 1)"), "{e}");
        s.inputs = 14;
        s.interruption_rate = 0.5;
        assert!(check_summary(&s, &said, 8).is_err());
        s.interruption_rate = 4.0 / 14.0;
        s.segments_done = 7;
        assert!(check_summary(&s, &said, 8).is_err());
    }

    #[test]
    fn the_script_says_next_most() {
        let next = SCRIPT.iter().filter(|l| ["next", "ok"].contains(l)).count();
        assert!(2 * next > SCRIPT.len(), "{next} of {}", SCRIPT.len());
        // `--help` (main.rs) says so.
        assert_eq!(SCRIPT.len(), 16);
    }
}
