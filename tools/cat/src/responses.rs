//! Response files: JSON lines `{"items": ["id", ...], "answers": [score, ...]}`,
//! each score an integer from 0 to the item's highest (0 or 1, or false or
//! true, for a dichotomous item).

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
    /// `answers[i]` is the score on `items[i]` (1 for a correct answer to a
    /// dichotomous item).
    pub answers: Vec<u8>,
}

#[derive(Deserialize)]
struct RawPattern {
    items: Vec<Value>,
    answers: Vec<Value>,
}

/// A score from 0 to `max`: an integer (1.0 counts as 1), or for a dichotomous
/// item (`max` 1) also false or true.
fn score(value: &Value, max: u8) -> Option<u8> {
    match value {
        Value::Bool(b) if max == 1 => Some(u8::from(*b)),
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.fract() == 0.0 && (0.0..=f64::from(max)).contains(x))
            .map(|x| x as u8),
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
            .zip(&items)
            .enumerate()
            .map(|(j, (value, &i))| {
                let max = bank.bank.max_score(i);
                score(value, max).ok_or_else(|| {
                    let allowed = if max == 1 {
                        "0, 1, true or false".to_owned()
                    } else {
                        format!("an integer score from 0 to {max}")
                    };
                    at(format!(
                        "answers[{j}] must be {allowed} for item {:?} (got {value})",
                        bank.ids[i]
                    ))
                })
            })
            .collect::<Result<Vec<u8>, Error>>()?;
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
    use lectern_engine::{Item, ItemBank, ItemParams};
    use std::collections::HashMap;

    /// Two dichotomous items, q1 and q2, and a 4-category GRM item, 17.
    fn bank() -> Bank {
        let ids = vec!["q1".to_owned(), "q2".to_owned(), "17".to_owned()];
        let two = Item::from(ItemParams::new(1.0, 0.0, 0.0, 1.0).unwrap());
        let items = vec![
            two.clone(),
            two,
            Item::grm(1.0, vec![-1.0, 0.0, 1.0]).unwrap(),
        ];
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
        let text = "{\"items\": [\"q2\", \"q1\"], \"answers\": [1, false]}\n\n  \n{\"items\": [17, \"q1\"], \"answers\": [3, true], \"extra\": 1}\r\n{\"items\": [], \"answers\": []}";
        let got = parse("r.jsonl", text, &bank()).unwrap();
        assert_eq!(
            got,
            vec![
                Pattern {
                    line: 1,
                    items: vec![1, 0],
                    answers: vec![1, 0]
                },
                Pattern {
                    line: 4,
                    items: vec![2, 0],
                    answers: vec![3, 1]
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
            "r.jsonl: line 1: answers[0] must be 0, 1, true or false for item \"q1\" (got 2)"
        );
        assert_eq!(
            err("{\"items\": [\"q1\", 17], \"answers\": [1, 4]}"),
            "r.jsonl: line 1: answers[1] must be an integer score from 0 to 3 for item \"17\" (got 4)"
        );
        for bad in ["true", "1.5", "-1", "\"2\""] {
            assert_eq!(
                err(&format!("{{\"items\": [17], \"answers\": [{bad}]}}")),
                format!(
                    "r.jsonl: line 1: answers[0] must be an integer score from 0 to 3 for item \"17\" (got {bad})"
                )
            );
        }
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
