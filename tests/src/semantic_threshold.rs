//! How well a similarity threshold separates paraphrases from near misses:
//! the measurement behind [`lectern::semantic::DEFAULT_THRESHOLD`], run by the
//! `semantic-threshold` tool (against the fake API or a real provider) and by
//! the `semantic_threshold` tests.
//!
//! The set ([`ParaphraseSet`], `docs/semantic-cache/paraphrases.json`) holds
//! groups of one question and its paraphrases, per segment of a course, and
//! different questions about the same segments. Every text is embedded through
//! [`Client::embed`] (so any OpenAI-compatible provider can be measured). Per
//! segment the cache holds the groups' questions; each paraphrase and each
//! different question is a query, searched with [`lectern::semantic::nearest`]
//! among its segment's questions. At threshold `t` a query hits when its best
//! score is at least `t`; a hit is correct when a paraphrase finds its own
//! group's question.

use std::collections::HashMap;

use lectern::ai::{Client, Error};
use lectern::semantic::{nearest, normalize};
use serde::{Deserialize, Serialize};

/// The thresholds measured by default.
pub const THRESHOLDS: [f32; 7] = [0.60, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95];

/// The set in `docs/semantic-cache/paraphrases.json`, as built in.
pub const BUNDLED: &str = include_str!("../../docs/semantic-cache/paraphrases.json");

/// Questions about one course's segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParaphraseSet {
    /// The course they are about.
    pub course: String,
    /// What the set is for.
    #[serde(default)]
    pub description: String,
    /// Questions that should hit the cache when their group's question is in it.
    pub groups: Vec<Group>,
    /// Questions that should not hit anything.
    pub different: Vec<Different>,
}

/// A first asker's question and others asking the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// The segment asked about.
    pub segment: String,
    /// The question cached.
    pub question: String,
    /// The same question, as other students ask it.
    pub paraphrases: Vec<String>,
}

/// A question about a segment that no group asks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Different {
    /// The segment asked about.
    pub segment: String,
    /// The question.
    pub question: String,
}

impl ParaphraseSet {
    /// [`BUNDLED`], parsed.
    pub fn bundled() -> Self {
        Self::parse(BUNDLED).expect("the bundled paraphrase set parses")
    }

    /// A set from its JSON.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// What one query found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The query.
    pub query: String,
    /// Its segment.
    pub segment: String,
    /// The group it paraphrases (an index of [`ParaphraseSet::groups`]);
    /// `None` for a different question.
    pub group: Option<usize>,
    /// The group whose question scored best (`None`: the segment holds none).
    pub best: Option<usize>,
    /// That question's cosine similarity with the query.
    pub score: f32,
}

impl Scored {
    /// Whether the best match is the query's own group's question.
    pub fn correct(&self) -> bool {
        self.group.is_some() && self.group == self.best
    }
}

/// The outcome at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The threshold.
    pub threshold: f32,
    /// Paraphrase queries (the most correct hits there can be).
    pub paraphrases: usize,
    /// Different-question queries.
    pub different: usize,
    /// Queries whose best score reached the threshold.
    pub hits: usize,
    /// Hits of a paraphrase on its own group's question.
    pub correct_hits: usize,
    /// Hits of a paraphrase on another group's question.
    pub wrong_group_hits: usize,
    /// Hits of a different question.
    pub false_hits: usize,
    /// `correct_hits / hits` (1 when nothing hits: no wrong answer served).
    pub precision: f64,
    /// `correct_hits / paraphrases`.
    pub hit_rate: f64,
}

/// Embeds every question of `set` through `client` (each distinct text once)
/// and scores every query against its segment's questions.
pub async fn score(client: &Client, set: &ParaphraseSet) -> Result<Vec<Scored>, Error> {
    let mut vectors: HashMap<&str, Vec<f32>> = HashMap::new();
    let texts = set
        .groups
        .iter()
        .flat_map(|g| std::iter::once(&g.question).chain(&g.paraphrases))
        .chain(set.different.iter().map(|d| &d.question));
    for text in texts {
        if !vectors.contains_key(text.as_str()) {
            let mut v = client.embed(text).await?.vector;
            normalize(&mut v);
            vectors.insert(text, v);
        }
    }
    let search = |query: &str, segment: &str, group: Option<usize>| {
        let stored: Vec<(usize, &[f32])> = set
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.segment == segment)
            .map(|(i, g)| (i, vectors[g.question.as_str()].as_slice()))
            .collect();
        let found = nearest(&vectors[query], stored.iter().map(|(_, v)| *v));
        Scored {
            query: query.to_owned(),
            segment: segment.to_owned(),
            group,
            best: found.map(|n| stored[n.index].0),
            score: found.map_or(f32::NEG_INFINITY, |n| n.score),
        }
    };
    let mut scored = Vec::new();
    for (i, g) in set.groups.iter().enumerate() {
        for p in &g.paraphrases {
            scored.push(search(p, &g.segment, Some(i)));
        }
    }
    for d in &set.different {
        scored.push(search(&d.question, &d.segment, None));
    }
    Ok(scored)
}

/// The outcome of `scored` at each of `thresholds`.
pub fn tabulate(scored: &[Scored], thresholds: &[f32]) -> Vec<Row> {
    thresholds
        .iter()
        .map(|&threshold| {
            let hit = |s: &&Scored| s.best.is_some() && s.score >= threshold;
            let paraphrases = scored.iter().filter(|s| s.group.is_some()).count();
            let hits = scored.iter().filter(hit).count();
            let correct_hits = scored.iter().filter(hit).filter(|s| s.correct()).count();
            let false_hits = scored
                .iter()
                .filter(hit)
                .filter(|s| s.group.is_none())
                .count();
            Row {
                threshold,
                paraphrases,
                different: scored.len() - paraphrases,
                hits,
                correct_hits,
                wrong_group_hits: hits - correct_hits - false_hits,
                false_hits,
                precision: if hits == 0 {
                    1.0
                } else {
                    correct_hits as f64 / hits as f64
                },
                hit_rate: if paraphrases == 0 {
                    0.0
                } else {
                    correct_hits as f64 / paraphrases as f64
                },
            }
        })
        .collect()
}

/// [`score`] then [`tabulate`]: the outcome of `set` at each of `thresholds`.
pub async fn measure(
    client: &Client,
    set: &ParaphraseSet,
    thresholds: &[f32],
) -> Result<Vec<Row>, Error> {
    Ok(tabulate(&score(client, set).await?, thresholds))
}

/// The lowest threshold of `rows` with precision 1 and at least one hit
/// (precision only rises with the threshold, so every higher one has it too).
pub fn choose(rows: &[Row]) -> Option<f32> {
    rows.iter()
        .filter(|r| r.precision >= 1.0 && r.hits > 0)
        .map(|r| r.threshold)
        .min_by(f32::total_cmp)
}

/// `rows` as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| threshold | hits | correct | wrong group | false (different) | precision | hit rate |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {:.2} | {} | {} | {} | {} / {} | {:.3} | {:.3} ({}/{}) |\n",
            r.threshold,
            r.hits,
            r.correct_hits,
            r.wrong_group_hits,
            r.false_hits,
            r.different,
            r.precision,
            r.hit_rate,
            r.correct_hits,
            r.paraphrases,
        ));
    }
    out
}
