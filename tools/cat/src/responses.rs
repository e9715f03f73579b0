//! Response files: JSON lines `{"items": ["id", ...], "answers": [0|1, ...]}`.

use serde::Deserialize;
use serde_json::Value;

use crate::bank::{Bank, id_of};
use crate::error::{Error, Place, json_message};

/// One response pattern, with items as bank indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// Line of the file it came from.
    pub line: u64,
    /// Items answered, as indexes into the bank.
    pub items: Vec<usize>,
    /// `answers[i]` is true when `items[i]` was answered correctly.
    pub answers: Vec<bool>,
}

#[derive(Deserialize)]
struct RawPattern {
    items: Vec<Value>,
    answers: Vec<Value>,
}

fn answer(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// Parses every non-blank line of `text` (from the file called `name`) against `bank`.
pub fn parse(name: &str, text: &str, bank: &Bank) -> Result<Vec<Pattern>, Error> {
    let mut patterns = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = k as u64 + 1;
        let at = |message: String| Error::at(name, Place::Line(n), message);
        let raw: RawPattern = serde_json::from_str(line).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => at(json_message(&e)),
            _ => at(format!(
                "invalid JSON at column {}: {}",
                e.column(),
                json_message(&e)
            )),
        })?;
        if raw.items.len() != raw.answers.len() {
            return Err(at(format!(
                "{} items but {} answers (they must pair up)",
                raw.items.len(),
                raw.answers.len()
            )));
        }
        let mut items = Vec::with_capacity(raw.items.len());
        for (j, value) in raw.items.iter().enumerate() {
            let id = id_of(value).ok_or_else(|| {
                at(format!(
                    "items[{j}] must be an item id string (got {value})"
                ))
            })?;
            let &i = bank
                .index
                .get(&id)
                .ok_or_else(|| at(format!("unknown item {id:?}")))?;
            if items.contains(&i) {
                return Err(at(format!("item {id:?} is answered twice")));
            }
            items.push(i);
        }
        let answers = raw
            .answers
            .iter()
            .enumerate()
            .map(|(j, value)| {
                answer(value).ok_or_else(|| {
                    at(format!(
                        "answers[{j}] must be 0, 1, true or false (got {value})"
                    ))
                })
            })
            .collect::<Result<Vec<bool>, Error>>()?;
        patterns.push(Pattern {
            line: n,
            items,
            answers,
        });
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lectern_engine::{ItemBank, ItemParams};
    use std::collections::HashMap;

    fn bank() -> Bank {
        let ids = vec!["q1".to_owned(), "q2".to_owned(), "17".to_owned()];
        let items = vec![ItemParams::new(1.0, 0.0, 0.0, 1.0).unwrap(); 3];
        Bank {
            bank: ItemBank::without_concepts(items),
            index: ids.iter().cloned().zip(0..).collect::<HashMap<_, _>>(),
            ids,
            concepts: Vec::new(),
            has_exposure: false,
        }
    }

    #[test]
    fn parses_patterns_and_skips_blank_lines() {
        let text = "{\"items\": [\"q2\", \"q1\"], \"answers\": [1, 0]}\n\n  \n{\"items\": [17], \"answers\": [true], \"extra\": 1}\r\n{\"items\": [], \"answers\": []}";
        let got = parse("r.jsonl", text, &bank()).unwrap();
        assert_eq!(
            got,
            vec![
                Pattern {
                    line: 1,
                    items: vec![1, 0],
                    answers: vec![true, false]
                },
                Pattern {
                    line: 4,
                    items: vec![2],
                    answers: vec![true]
                },
                Pattern {
                    line: 5,
                    items: vec![],
                    answers: vec![]
                },
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = |text: &str| parse("r.jsonl", text, &bank()).unwrap_err().to_string();
        assert_eq!(
            err("\n{\"items\": [\"q1\", \"q9\"], \"answers\": [1, 0]}"),
            "r.jsonl: line 2: unknown item \"q9\""
        );
        assert_eq!(
            err("{\"items\": [\"q1\"], \"answers\": [1, 0]}"),
            "r.jsonl: line 1: 1 items but 2 answers (they must pair up)"
        );
        assert_eq!(
            err("{\"items\": [\"q1\"], \"answers\": [2]}"),
            "r.jsonl: line 1: answers[0] must be 0, 1, true or false (got 2)"
        );
        assert_eq!(
            err("{\"items\": [\"q1\", \"q1\"], \"answers\": [1, 1]}"),
            "r.jsonl: line 1: item \"q1\" is answered twice"
        );
        assert_eq!(
            err("{\"items\": [\"q1\"]}"),
            "r.jsonl: line 1: missing field `answers`"
        );
        assert_eq!(
            err("{\"items\": [\"q1\"], \"answers\": [1"),
            "r.jsonl: line 1: invalid JSON at column 31: EOF while parsing a list"
        );
        assert_eq!(
            err("{\"items\": [null], \"answers\": [1]}"),
            "r.jsonl: line 1: items[0] must be an item id string (got null)"
        );
    }
}
