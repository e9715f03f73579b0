//! The fake API's embeddings: deterministic, cheap, and *not* a neural model.
//!
//! A question is lowercased and cut into words, numbers and math symbols;
//! exponent notations (`x^0`, `x to the power of zero`, `x to the 0th`,
//! `x squared`, `x^(1/2)`, `square root`) become one token each; single
//! letters (variables) and a list of stop words go; the rest is crudely
//! stemmed (plural `s`, `-ing`, `-ed`, `-ly`, ...) and mapped through a small
//! synonym table (why / how come / what makes, power / exponent / index,
//! times / multiply, zero / 0, ...). Each remaining distinct token is hashed
//! into [`DIMENSIONS`] dimensions (weight 1, or 0.5 for words that only frame
//! the question, like `why`, `how` or `explain`), its character trigrams at a
//! lower weight (a typo still lands close), and the sum is normalised.
//!
//! Paraphrases sharing their content words land near each other, questions
//! differing in one content word (`x^0` against `x^1`, add against multiply)
//! land further apart. It knows nothing of meaning beyond that table: two
//! phrasings with no word in common score near 0, and a threshold measured on
//! it says nothing about a real embedding model (re-measure with
//! `semantic-threshold --base-url ...`).

/// Dimensions of every fake embedding.
pub const DIMENSIONS: usize = 256;

/// Weight of a word that frames the question rather than saying what it is about.
const FRAMING_WEIGHT: f32 = 0.5;
/// Total weight of one token's character trigrams.
const TRIGRAM_WEIGHT: f32 = 0.5;
/// Weight of a pair of neighbouring tokens (word order, a little).
const BIGRAM_WEIGHT: f32 = 0.5;

/// Words dropped before anything else.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "actually",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "being",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "doe",
    "does",
    "doing",
    "even",
    "ever",
    "exactly",
    "for",
    "from",
    "get",
    "got",
    "have",
    "having",
    "he",
    "her",
    "here",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isnt",
    "it",
    "its",
    "just",
    "like",
    "me",
    "mean",
    "meaning",
    "means",
    "my",
    "now",
    "number",
    "numbers",
    "of",
    "on",
    "or",
    "our",
    "please",
    "really",
    "she",
    "so",
    "some",
    "someone",
    "something",
    "supposed",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "thing",
    "this",
    "those",
    "to",
    "too",
    "u",
    "up",
    "us",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "when",
    "which",
    "while",
    "who",
    "will",
    "with",
    "would",
    "you",
    "your",
    "ur",
    "happen",
    "happens",
    "both",
];

/// Phrases rewritten before the text is cut into tokens (longest first
/// where one contains another).
const PHRASES: &[(&str, &str)] = &[
    ("how come", " why "),
    ("what makes", " why "),
    ("what is the reason", " why "),
    ("what's the reason", " why "),
    ("whats the reason", " why "),
    ("the reason", " why "),
    ("raised to the power of", " ^ "),
    ("to the power of", " ^ "),
    ("raised to the", " to the "),
    ("raised to", " ^ "),
    ("square root", " sqrt "),
    ("cube root", " cbrt "),
    ("one half", " 1/2 "),
    ("a half", " 1/2 "),
    ("one third", " 1/3 "),
    ("two thirds", " 2/3 "),
    ("scientific notation", " scinot "),
    ("standard form", " scinot "),
    ("work out", " calculate "),
    ("figure out", " calculate "),
    ("take away", " subtract "),
    ("taking away", " subtract "),
    ("one over", " 1/ "),
    ("1 over", " 1/ "),
    ("not the same", " different "),
    ("arent the same", " different "),
    ("aren't the same", " different "),
];

/// Words (or stems) mapped to one token; `""` drops the word.
const SYNONYMS: &[(&str, &str)] = &[
    ("reason", "why"),
    ("explain", "explain"),
    ("describe", "explain"),
    ("tell", "explain"),
    ("show", "explain"),
    ("calculate", "calculate"),
    ("compute", "calculate"),
    ("solve", "calculate"),
    ("evaluate", "calculate"),
    ("find", "calculate"),
    ("rule", "how"),
    ("method", "how"),
    ("way", "how"),
    ("power", "exponent"),
    ("powers", "exponent"),
    ("exponent", "exponent"),
    ("exponents", "exponent"),
    ("index", "exponent"),
    ("indice", "exponent"),
    ("indices", "exponent"),
    ("multiply", "multiply"),
    ("multiplied", "multiply"),
    ("multiplying", "multiply"),
    ("multiplication", "multiply"),
    ("times", "multiply"),
    ("product", "multiply"),
    ("*", "multiply"),
    ("divide", "divide"),
    ("divided", "divide"),
    ("dividing", "divide"),
    ("division", "divide"),
    ("quotient", "divide"),
    ("add", "add"),
    ("added", "add"),
    ("adding", "add"),
    ("addition", "add"),
    ("plus", "add"),
    ("sum", "add"),
    ("+", "add"),
    ("subtract", "subtract"),
    ("subtracted", "subtract"),
    ("subtracting", "subtract"),
    ("subtraction", "subtract"),
    ("minus", "subtract"),
    ("equal", "eq"),
    ("equals", "eq"),
    ("=", "eq"),
    ("give", "eq"),
    ("gives", "eq"),
    ("result", "answer"),
    ("answer", "answer"),
    ("negative", "negative"),
    ("negatives", "negative"),
    ("neg", "negative"),
    ("fraction", "fraction"),
    ("fractional", "fraction"),
    ("denominator", "denominator"),
    ("bottom", "denominator"),
    ("numerator", "numerator"),
    ("top", "numerator"),
    ("big", "big"),
    ("bigger", "big"),
    ("large", "big"),
    ("larger", "big"),
    ("huge", "big"),
    ("higher", "big"),
    ("greater", "big"),
    ("small", "small"),
    ("smaller", "small"),
    ("tiny", "small"),
    ("different", "different"),
    ("difference", "different"),
    ("differ", "different"),
    ("vs", "different"),
    ("versus", "different"),
    ("apart", "different"),
    ("possible", "can"),
    ("allowed", "can"),
    ("work", "can"),
    ("apply", "apply"),
    ("go", "apply"),
    ("coefficient", "coefficient"),
    ("coefficients", "coefficient"),
    ("squared", "pow2"),
    ("square", "pow2"),
    ("squaring", "pow2"),
    ("cubed", "pow3"),
    ("cube", "pow3"),
    ("sqrt", "sqrt"),
    ("√", "sqrt"),
    ("cbrt", "cbrt"),
    ("ten", "10"),
    ("raising", "raise"),
    ("raised", "raise"),
    ("convert", "write"),
    ("put", "write"),
    ("putting", "write"),
    ("written", "write"),
    ("expand", "simplify"),
];

/// Words that frame a question (weighted down).
const FRAMING: &[&str] = &[
    "why",
    "how",
    "explain",
    "calculate",
    "can",
    "eq",
    "simplify",
];

/// Number words, as exponents or not.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("zeroth", "0"),
    ("0th", "0"),
    ("one", "1"),
    ("first", "1"),
    ("two", "2"),
    ("second", "2"),
    ("three", "3"),
    ("third", "3"),
    ("four", "4"),
    ("five", "5"),
    ("half", "1/2"),
];

/// The fake embedding of `text`: unit length (all zeros when no token is
/// left), [`DIMENSIONS`] long, the same for the same text on every run.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIMENSIONS];
    let tokens = tokens(text);
    for pair in tokens.windows(2) {
        add(&mut v, &format!("{} {}", pair[0], pair[1]), BIGRAM_WEIGHT);
    }
    for token in tokens {
        let weight = if FRAMING.contains(&token.as_str()) {
            FRAMING_WEIGHT
        } else {
            1.0
        };
        add(&mut v, &token, weight);
        if token.chars().count() >= 4 && token.chars().all(char::is_alphabetic) {
            let marked: Vec<char> = format!("<{token}>").chars().collect();
            let trigrams: Vec<String> = marked.windows(3).map(|w| w.iter().collect()).collect();
            let each = weight * TRIGRAM_WEIGHT / (trigrams.len() as f32).sqrt();
            for t in trigrams {
                add(&mut v, &format!("#{t}"), each);
            }
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The distinct tokens of `text`, in order of first appearance.
pub fn tokens(text: &str) -> Vec<String> {
    let mut text = format!(
        " {} ",
        text.to_lowercase()
            .replace(['’', '‘'], "'")
            .replace('²', "^2")
            .replace('³', "^3")
    );
    for (from, to) in PHRASES {
        text = text.replace(from, to);
    }
    let raw = lex(&text);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let (token, used) = exponent_at(&raw, i).unwrap_or_else(|| (word(&raw[i]), 1));
        // A number to a power is also one thing of its own: `1^0` is not `x^0`.
        let base = i.checked_sub(1).map(|b| word(&raw[b]));
        if let Some(base) =
            base.filter(|b| token.starts_with("pow") && b.starts_with(|c: char| c.is_ascii_digit()))
        {
            let whole = format!("{base}^{}", &token[3..]);
            if !out.contains(&whole) {
                out.push(whole);
            }
        }
        i += used;
        if !token.is_empty() && !out.contains(&token) {
            out.push(token);
        }
    }
    out
}

/// Words (apostrophes dropped), numbers (`2`, `0.5`, `2/3`, `1/`) and single symbols.
fn lex(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '\'' {
            let mut w = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '\'') {
                if chars[i] != '\'' {
                    w.push(chars[i]);
                }
                i += 1;
            }
            if !w.is_empty() {
                out.push(w);
            }
        } else if c.is_ascii_digit() {
            let mut n = String::new();
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (matches!(chars[i], '.' | '/')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                n.push(chars[i]);
                i += 1;
            }
            // `1/` of "one over": a reciprocal.
            if chars.get(i) == Some(&'/') && n == "1" {
                n.push('/');
                i += 1;
            }
            out.push(n);
            // `3x`, `2x`: the coefficient stays, the variable goes.
            while i < chars.len()
                && chars[i].is_alphabetic()
                && !chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
            {
                i += 1;
            }
        } else if c.is_whitespace() {
            i += 1;
        } else {
            if "^=+*/-√".contains(c) {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// An exponent starting at `raw[i]` (`^ 2`, `^ - 1`, `^ 1/2`, `to the zero`,
/// `to the 0th power`, `to the negative one`): its token and how many raw
/// tokens it took.
fn exponent_at(raw: &[String], i: usize) -> Option<(String, usize)> {
    let mut j = if raw[i] == "^" {
        i + 1
    } else if raw[i] == "to" && raw.get(i + 1).is_some_and(|t| t == "the") {
        i + 2
    } else {
        return None;
    };
    let mut negative = false;
    if raw
        .get(j)
        .is_some_and(|t| t == "-" || t == "negative" || t == "minus")
    {
        negative = true;
        j += 1;
    }
    let value = raw.get(j)?;
    let number = NUMBER_WORDS
        .iter()
        .find(|(w, _)| w == value)
        .map(|(_, n)| n.to_string())
        .or_else(|| {
            (value.starts_with(|c: char| c.is_ascii_digit())
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '/'))
            .then(|| value.clone())
        })
        .or_else(|| {
            (value.chars().count() == 1 && value.chars().all(char::is_alphabetic))
                .then(|| "n".to_owned())
        });
    let Some(mut number) = number else {
        // `^` before something else (a word): just "exponent".
        return (raw[i] == "^").then(|| ("exponent".to_owned(), 1));
    };
    j += 1;
    if raw
        .get(j)
        .is_some_and(|t| ["th", "st", "nd", "rd"].contains(&t.as_str()))
    {
        j += 1;
    }
    if raw.get(j).is_some_and(|t| t == "power" || t == "powers") {
        j += 1;
    }
    if number == "0.5" {
        number = "1/2".into();
    }
    let token = match (negative, number.as_str()) {
        (false, "1/2") => "sqrt".to_owned(),
        (false, "1/3") => "cbrt".to_owned(),
        (true, n) => format!("pow-{n}"),
        (false, n) => format!("pow{n}"),
    };
    Some((token, j - i))
}

/// One raw token as it counts: stop words and variables gone, number words
/// as digits, stemmed, through the synonym table.
fn word(raw: &str) -> String {
    if raw == "-" || raw == "/" {
        return String::new();
    }
    if let Some((_, to)) = SYNONYMS.iter().find(|(w, _)| *w == raw) {
        return (*to).to_owned();
    }
    if STOP_WORDS.contains(&raw) {
        return String::new();
    }
    if raw.chars().count() == 1 && raw.chars().all(char::is_alphabetic) {
        return String::new();
    }
    if let Some((_, n)) = NUMBER_WORDS.iter().find(|(w, _)| *w == raw) {
        return (*n).to_owned();
    }
    if raw.starts_with(|c: char| c.is_ascii_digit()) {
        return raw.to_owned();
    }
    let stem = stem(raw);
    if let Some((_, to)) = SYNONYMS.iter().find(|(w, _)| *w == stem) {
        return (*to).to_owned();
    }
    if STOP_WORDS.contains(&stem.as_str()) {
        return String::new();
    }
    stem
}

/// A crude English stemmer: the commonest suffixes off words long enough.
fn stem(w: &str) -> String {
    let n = w.chars().count();
    for (suffix, keep, min) in [
        ("ies", "y", 5),
        ("ing", "", 6),
        ("ed", "", 5),
        ("ly", "", 5),
        ("es", "", 6),
        ("s", "", 4),
    ] {
        if n >= min && w.ends_with(suffix) && !w.ends_with("ss") {
            return format!("{}{keep}", &w[..w.len() - suffix.len()]);
        }
    }
    w.to_owned()
}

/// Adds `weight` to the dimension `feature` hashes to (FNV-1a, with a sign bit
/// so collisions cancel out on average instead of piling up).
fn add(v: &mut [f32], feature: &str, weight: f32) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in feature.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    v[(h % v.len() as u64) as usize] += sign * weight;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &str, b: &str) -> f32 {
        lectern::semantic::dot(&embed(a), &embed(b))
    }

    #[test]
    fn exponent_notations_are_one_token() {
        for q in [
            "why is x^0 = 1",
            "why is x to the power of zero equal to 1",
            "why does x to the 0th power equal 1",
            "how come x raised to the zero gives one",
        ] {
            assert_eq!(tokens(q), ["why", "pow0", "eq", "1"], "{q}");
        }
        assert!(tokens("x^(1/2)").contains(&"sqrt".to_owned()));
        assert!(tokens("square root of x").contains(&"sqrt".to_owned()));
        assert!(tokens("x^-1").contains(&"pow-1".to_owned()));
        assert!(tokens("x to the negative one").contains(&"pow-1".to_owned()));
        assert!(tokens("x squared").contains(&"pow2".to_owned()));
    }

    #[test]
    fn deterministic_unit_and_sensible() {
        let a = embed("Why is x^0 equal to 1?");
        assert_eq!(a, embed("Why is x^0 equal to 1?"));
        assert_eq!(a.len(), DIMENSIONS);
        assert!((lectern::semantic::dot(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(embed("the of a"), vec![0.0; DIMENSIONS]);
        // Paraphrases near, a one-word change further.
        let same = cos(
            "Why is x^0 equal to 1?",
            "how come anything to the power of zero is 1",
        );
        let other = cos("Why is x^0 equal to 1?", "Why is x^1 equal to x?");
        assert!(same > 0.8 && other < same - 0.2, "{same} {other}");
        // A typo still lands close.
        let typo = cos("what is an exponent", "whats an exponant");
        assert!(typo > 0.05 && cos("what is an exponent", "whats a logarithm") < typo);
    }
}
