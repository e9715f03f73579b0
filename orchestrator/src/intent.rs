//! What a student's input asks for: a rule-based classifier, checked in this
//! order (the first rule that matches wins).
//!
//! 1. **Normalise**: lower case, typographic apostrophes made plain, anything
//!    but letters, digits, `'` and spaces dropped, spaces collapsed. Whether the
//!    text held a `?` is kept aside.
//! 2. **Politeness is peeled off** the front ("please", "ok", "can you",
//!    "could we", "let's", "i want to", …) and the back ("please", "now",
//!    "thanks", …), as long as something is left.
//! 3. **A short command**: what is left equals one of the phrases of
//!    [`COMMANDS`] — "end", "hold on", "i'm back", "say that again", "skip
//!    ahead", "got it", … — so "Can you repeat that, please?" is
//!    [`Intent::Repeat`] and "OK" is [`Intent::Continue`]. Whole phrases only:
//!    "how does the loop end?" is a question, not an order to end.
//! 4. **Confusion**: "what" or "huh" alone, or a confusion marker ("don't
//!    understand", "confused", "lost me", "makes no sense", "too fast", …)
//!    with no question word → [`Intent::Confused`]. With a question word ("I
//!    don't get *why* it halves") it is [`Intent::Question`], and
//!    [`sounds_confused`] tells the orchestrator to raise the confusion level
//!    all the same.
//! 5. **A question**: a `?` anywhere, or a first word (after politeness) that opens a question
//!    ("why", "how", "is", "can", "explain", "tell me", …) → [`Intent::Question`].
//! 6. Anything else is [`Intent::Other`].

use serde::{Deserialize, Serialize};

/// What an input asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A question about the material.
    Question,
    /// Go on to what comes next.
    Continue,
    /// Say the current segment again.
    Repeat,
    /// Stop for a while.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Leave the current segment out.
    Skip,
    /// The student did not follow.
    Confused,
    /// End the session.
    End,
    /// A remark that is none of the above.
    Other,
}

impl Intent {
    /// Every intent, in declaration order.
    pub const ALL: [Intent; 9] = [
        Intent::Question,
        Intent::Continue,
        Intent::Repeat,
        Intent::Pause,
        Intent::Resume,
        Intent::Skip,
        Intent::Confused,
        Intent::End,
        Intent::Other,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Question => "question",
            Intent::Continue => "continue",
            Intent::Repeat => "repeat",
            Intent::Pause => "pause",
            Intent::Resume => "resume",
            Intent::Skip => "skip",
            Intent::Confused => "confused",
            Intent::End => "end",
            Intent::Other => "other",
        }
    }
}

/// The short commands, as whole phrases after normalising and peeling off politeness.
pub const COMMANDS: &[(Intent, &[&str])] = &[
    (
        Intent::End,
        &[
            "end",
            "end session",
            "end the session",
            "end the lesson",
            "stop",
            "stop the session",
            "stop the lesson",
            "quit",
            "exit",
            "bye",
            "goodbye",
            "good bye",
            "i'm done",
            "im done",
            "i am done",
            "we're done",
            "we are done",
            "that's all",
            "thats all",
            "finish",
            "finish the lesson",
            "done for today",
            "that's enough",
            "enough",
        ],
    ),
    (
        Intent::Pause,
        &[
            "pause",
            "pause the lesson",
            "wait",
            "hold on",
            "hang on",
            "one moment",
            "one sec",
            "one second",
            "just a moment",
            "just a sec",
            "give me a minute",
            "give me a moment",
            "brb",
            "be right back",
            "take a break",
            "break",
            "stop for a moment",
        ],
    ),
    (
        Intent::Resume,
        &[
            "resume",
            "unpause",
            "i'm back",
            "im back",
            "i am back",
            "back",
            "where were we",
            "continue where we left off",
            "pick up where we left off",
        ],
    ),
    (
        Intent::Repeat,
        &[
            "repeat",
            "repeat that",
            "repeat it",
            "repeat the last part",
            "say that again",
            "say it again",
            "again",
            "one more time",
            "once more",
            "come again",
            "what did you say",
            "go over that again",
            "go over it again",
        ],
    ),
    (
        Intent::Skip,
        &[
            "skip",
            "skip it",
            "skip this",
            "skip that",
            "skip this part",
            "skip this segment",
            "skip ahead",
            "next topic",
            "move on",
            "i know this",
            "i know this already",
            "i already know this",
            "already know this",
        ],
    ),
    (
        Intent::Continue,
        &[
            "continue",
            "next",
            "next one",
            "go on",
            "go ahead",
            "keep going",
            "carry on",
            "proceed",
            "ok",
            "okay",
            "k",
            "yes",
            "yeah",
            "yep",
            "sure",
            "alright",
            "all right",
            "fine",
            "cool",
            "great",
            "got it",
            "i got it",
            "understood",
            "i understand",
            "makes sense",
            "that makes sense",
            "ready",
            "i'm ready",
            "let's go",
            "go",
        ],
    ),
];

/// Phrases that say the student did not follow.
const CONFUSION_MARKERS: &[&str] = &[
    "don't understand",
    "dont understand",
    "do not understand",
    "didn't understand",
    "didnt understand",
    "don't get it",
    "dont get it",
    "do not get it",
    "didn't get",
    "don't get",
    "dont get",
    "confused",
    "confusing",
    "lost me",
    "i'm lost",
    "im lost",
    "i am lost",
    "makes no sense",
    "doesn't make sense",
    "does not make sense",
    "not clear",
    "unclear",
    "too fast",
    "too complicated",
    "too hard",
];

/// Inputs that are confusion on their own.
const CONFUSED_ALONE: &[&str] = &["what", "huh", "eh", "sorry", "pardon", "i'm sorry what"];

/// Words that, first, open a question (or, anywhere, make a confused remark a question).
const QUESTION_WORDS: &[&str] = &[
    "what", "what's", "whats", "why", "how", "when", "where", "who", "whom", "whose", "which",
];

/// Further first words that open a question.
const QUESTION_OPENERS: &[&str] = &[
    "is", "are", "was", "were", "am", "do", "does", "did", "can", "could", "would", "will",
    "should", "shall", "may", "might", "isn't", "aren't", "doesn't", "don't", "explain",
];

/// Multi-word openers of a question.
const QUESTION_PHRASES: &[&str] = &["tell me", "i wonder", "i have a question", "question"];

/// Politeness and fillers peeled off the front, longest first.
const LEADING: &[&str] = &[
    "i would like to",
    "i'd like to",
    "i want to",
    "could you please",
    "can you please",
    "could you",
    "can you",
    "would you",
    "could we",
    "can we",
    "shall we",
    "let's",
    "lets",
    "please",
    "ok so",
    "okay so",
    "ok",
    "okay",
    "alright",
    "well",
    "so",
    "um",
    "uh",
    "hey",
];

/// Politeness peeled off the back.
const TRAILING: &[&str] = &["please", "now", "for now", "thanks", "thank you"];

/// Classifies one input (see the module's rules).
pub fn classify(text: &str) -> Intent {
    let norm = normalise(text);
    if norm.is_empty() {
        return Intent::Other;
    }
    let core = peel(&norm);
    if let Some(intent) = command(core) {
        return intent;
    }
    if CONFUSED_ALONE.contains(&core) {
        return Intent::Confused;
    }
    if has_marker(&norm) {
        return if has_question_word(&norm) {
            Intent::Question
        } else {
            Intent::Confused
        };
    }
    if text.contains('?') || opens_question(core) {
        return Intent::Question;
    }
    Intent::Other
}

/// Whether the input carries a confusion marker (a question may, too: "I don't
/// get why …?"), which raises the confusion level whatever the intent.
pub fn sounds_confused(text: &str) -> bool {
    let norm = normalise(text);
    has_marker(&norm) || CONFUSED_ALONE.contains(&peel(&norm))
}

/// Lower case; plain apostrophes; only letters, digits, `'` and single spaces.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '`' => '\'',
            c if c.is_alphanumeric() || c == '\'' => c,
            _ => ' ',
        };
        if c != ' ' || !out.ends_with(' ') {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The text with leading and trailing politeness removed (unless nothing would be left).
fn peel(norm: &str) -> &str {
    let mut core = norm;
    loop {
        let before = core;
        for lead in LEADING {
            if let Some(rest) = strip_words_prefix(core, lead) {
                core = rest;
                break;
            }
        }
        for trail in TRAILING {
            if let Some(rest) = strip_words_suffix(core, trail) {
                core = rest;
                break;
            }
        }
        if core == before {
            return core;
        }
    }
}

fn strip_words_prefix<'t>(text: &'t str, words: &str) -> Option<&'t str> {
    let rest = text.strip_prefix(words)?.strip_prefix(' ')?;
    (!rest.is_empty()).then_some(rest)
}

fn strip_words_suffix<'t>(text: &'t str, words: &str) -> Option<&'t str> {
    let rest = text.strip_suffix(words)?.strip_suffix(' ')?;
    (!rest.is_empty()).then_some(rest)
}

fn command(core: &str) -> Option<Intent> {
    COMMANDS
        .iter()
        .find(|(_, phrases)| phrases.contains(&core))
        .map(|(intent, _)| *intent)
}

/// Whether `phrase` occurs in `norm` on word boundaries.
fn contains_phrase(norm: &str, phrase: &str) -> bool {
    norm.match_indices(phrase).any(|(at, _)| {
        let before = norm[..at].chars().next_back();
        let after = norm[at + phrase.len()..].chars().next();
        before.is_none_or(|c| c == ' ') && after.is_none_or(|c| c == ' ')
    })
}

fn has_marker(norm: &str) -> bool {
    CONFUSION_MARKERS.iter().any(|m| contains_phrase(norm, m))
}

fn has_question_word(norm: &str) -> bool {
    norm.split(' ').any(|w| QUESTION_WORDS.contains(&w))
}

fn opens_question(norm: &str) -> bool {
    let first = norm.split(' ').next().unwrap_or("");
    QUESTION_WORDS.contains(&first)
        || QUESTION_OPENERS.contains(&first)
        || QUESTION_PHRASES
            .iter()
            .any(|p| norm == *p || norm.starts_with(&format!("{p} ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(intent: Intent, inputs: &[&str]) {
        for input in inputs {
            assert_eq!(classify(input), intent, "{input:?}");
        }
    }

    #[test]
    fn rule_1_normalising_ignores_case_punctuation_and_curly_apostrophes() {
        all(Intent::Pause, &["HOLD ON!", "  hold   on ...", "Hold on."]);
        all(Intent::End, &["I\u{2019}m done", "i'm done", "I`m done"]);
    }

    #[test]
    fn rule_2_politeness_is_peeled_off_both_ends() {
        all(
            Intent::Repeat,
            &[
                "Can you repeat that, please?",
                "could you please say that again",
                "Please repeat",
            ],
        );
        all(Intent::Skip, &["let's skip this", "I want to skip ahead"]);
        all(
            Intent::Continue,
            &[
                "ok so next please",
                "next, thanks",
                "ok, go on",
                "okay next",
            ],
        );
        all(Intent::Question, &["ok, what is a ratio"]);
        // Nothing is peeled when nothing would be left.
        all(Intent::Continue, &["ok", "okay"]);
    }

    #[test]
    fn rule_3_short_commands_for_every_command_intent() {
        all(
            Intent::End,
            &["end", "Bye!", "stop", "that's all", "end the lesson"],
        );
        all(Intent::Pause, &["pause", "wait", "brb", "give me a minute"]);
        all(Intent::Resume, &["resume", "I'm back", "where were we?"]);
        all(Intent::Repeat, &["again", "come again?", "one more time"]);
        all(Intent::Skip, &["skip", "move on", "I already know this"]);
        all(
            Intent::Continue,
            &["next", "got it", "yes", "go on", "makes sense"],
        );
        // A phrase must be the whole input: these mention a command word.
        all(
            Intent::Question,
            &["how does the loop end?", "when should I stop the timer?"],
        );
        assert_eq!(classify("the next step was nice"), Intent::Other);
    }

    #[test]
    fn every_command_phrase_classifies_as_its_intent() {
        for (intent, phrases) in COMMANDS {
            for phrase in *phrases {
                assert_eq!(classify(phrase), *intent, "{phrase:?}");
                // A question mark does not turn a command into a question.
                assert_eq!(classify(&format!("{phrase}?")), *intent, "{phrase:?}?");
            }
        }
    }

    #[test]
    fn rule_4_confusion_without_a_question_word() {
        all(
            Intent::Confused,
            &[
                "I don't understand",
                "I'm confused",
                "you lost me",
                "this makes no sense",
                "too fast!",
                "what?",
                "huh",
                "I didn't get that part",
            ],
        );
        // With a question word it is a question, and still sounds confused.
        let q = "I don't understand why the area halves";
        assert_eq!(classify(q), Intent::Question);
        assert!(sounds_confused(q));
        assert!(sounds_confused("what?"));
        assert!(!sounds_confused("why does the area halve?"));
        // "understand" alone is no marker.
        assert_eq!(classify("I understand"), Intent::Continue);
    }

    #[test]
    fn rule_5_questions_by_mark_or_opening_word() {
        all(
            Intent::Question,
            &[
                "Why is the sky blue",
                "how do I factor x^2 - 1",
                "is zero even",
                "Can a triangle have two right angles",
                "explain recursion",
                "tell me more about limits",
                "the derivative of x squared is 2x?",
                "What's a prime?",
            ],
        );
    }

    #[test]
    fn rule_6_anything_else_is_other() {
        all(
            Intent::Other,
            &[
                "I like this example",
                "my cat is sleeping",
                "no",
                "",
                "???!",
            ],
        );
    }

    #[test]
    fn phrases_match_on_word_boundaries_only() {
        // "unclear" is a marker; "nuclear" contains "clear" but is no marker.
        assert!(contains_phrase("this is unclear", "unclear"));
        assert!(!contains_phrase("nuclear physics", "unclear"));
        assert_eq!(classify("nuclear physics is fun"), Intent::Other);
    }

    #[test]
    fn names_round_trip_through_serde() {
        for intent in Intent::ALL {
            let json = serde_json::to_string(&intent).unwrap();
            assert_eq!(json, format!("\"{}\"", intent.as_str()));
            assert_eq!(serde_json::from_str::<Intent>(&json).unwrap(), intent);
        }
    }
}
