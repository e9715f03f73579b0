//! The parts of a test's design beyond the engine's configuration: mode,
//! content blueprint, enemy sets, time limit, performance levels and the
//! reported scale. An assessment sets them; a test carries them in its
//! configuration, so its record alone rebuilds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Error;

/// What an examinee learns while testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Correctness, θ and SE after every answer (today's feedback).
    #[default]
    Practice,
    /// No correctness, θ or SE while testing; results once staff release them.
    Exam,
}

/// How many items of one concept a test gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRange {
    /// At least this many.
    #[serde(default, deserialize_with = "crate::wire::stored_integer")]
    pub min: u32,
    /// At most this many.
    #[serde(deserialize_with = "crate::wire::stored_integer")]
    pub max: u32,
}

/// One performance level: its label and the θ it starts at (the lowest level
/// has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// What the level is called ("Proficient").
    pub label: String,
    /// The cut score it starts at; absent for the lowest level.
    #[serde(default)]
    pub from: Option<f64>,
}

/// The reported scale score: `intercept + slope·θ`, rounded to `decimals`
/// places and kept within `[min, max]`; its SE is `|slope|·SE`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Scale points per θ unit.
    pub slope: f64,
    /// The scale score at θ = 0.
    pub intercept: f64,
    /// Decimal places kept (0 to 4).
    #[serde(default, deserialize_with = "crate::wire::stored_integer")]
    pub decimals: u8,
    /// Lowest score reported.
    pub min: f64,
    /// Highest score reported.
    pub max: f64,
}

/// A score on the reported scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleScore {
    /// The score.
    pub score: f64,
    /// Its standard error.
    pub se: f64,
}

impl Scale {
    /// The scale score of θ ± SE.
    pub fn score(&self, theta: f64, se: f64) -> ScaleScore {
        let places = 10f64.powi(i32::from(self.decimals));
        let raw = self.intercept + self.slope * theta;
        let round = |x: f64| (x * places).round() / places;
        ScaleScore {
            score: round(raw).clamp(self.min, self.max),
            se: round(self.slope.abs() * se),
        }
    }
}

/// The design beyond the engine configuration, to check before it joins a
/// [`super::TestConfig`] (whose JSON and postcard forms keep these fields flat,
/// as an assessment's request body does).
#[derive(Debug, Clone, Default)]
pub struct DesignInput {
    /// `practice` (default) or `exam`.
    pub mode: Mode,
    /// Items per concept name.
    pub blueprint: BTreeMap<String, ItemRange>,
    /// Groups of question ids never given in one test.
    pub enemies: Vec<Vec<String>>,
    /// Seconds from start to the deadline.
    pub time_limit_s: Option<i64>,
    /// Performance levels, lowest first.
    pub levels: Vec<Level>,
    /// The reported scale.
    pub scale: Option<Scale>,
}

/// Longest time limit: a day.
pub const MAX_TIME_LIMIT_S: i64 = 24 * 3600;
/// Most performance levels.
pub const MAX_LEVELS: usize = 8;
/// Most enemy sets, and most items in one.
pub const MAX_ENEMY_SETS: usize = 200;

impl DesignInput {
    /// Checks what does not need the pool; the message names the field.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        for (name, range) in &self.blueprint {
            if range.min > range.max {
                return bad(format!(
                    "blueprint.{name}: min ({}) must not exceed max ({})",
                    range.min, range.max
                ));
            }
            if range.max > 200 {
                return bad(format!(
                    "blueprint.{name}.max must be at most 200 (got {})",
                    range.max
                ));
            }
        }
        if self.enemies.len() > MAX_ENEMY_SETS {
            return bad(format!(
                "enemies: at most {MAX_ENEMY_SETS} sets (got {})",
                self.enemies.len()
            ));
        }
        for (n, set) in self.enemies.iter().enumerate() {
            if !(2..=MAX_ENEMY_SETS).contains(&set.len()) {
                return bad(format!(
                    "enemies[{n}] must name 2 to {MAX_ENEMY_SETS} questions (got {})",
                    set.len()
                ));
            }
        }
        if let Some(limit) = self.time_limit_s
            && !(1..=MAX_TIME_LIMIT_S).contains(&limit)
        {
            return bad(format!(
                "time_limit_s must be from 1 to {MAX_TIME_LIMIT_S} seconds (got {limit})"
            ));
        }
        if !self.levels.is_empty() {
            if !(2..=MAX_LEVELS).contains(&self.levels.len()) {
                return bad(format!(
                    "levels: 2 to {MAX_LEVELS} levels (got {})",
                    self.levels.len()
                ));
            }
            for (n, level) in self.levels.iter().enumerate() {
                let label = level.label.trim();
                if label.is_empty() || label.chars().count() > 100 {
                    return bad(format!("levels[{n}].label must be 1 to 100 characters"));
                }
                match (n, level.from) {
                    (0, Some(_)) => {
                        return bad(
                            "levels[0].from: the lowest level has no cut score (leave it out)"
                                .into(),
                        );
                    }
                    (0, None) => {}
                    (_, None) => {
                        return bad(format!("levels[{n}].from (its cut score) is missing"));
                    }
                    (_, Some(cut)) if !(-6.0..=6.0).contains(&cut) => {
                        return bad(format!("levels[{n}].from must be from -6 to 6 (got {cut})"));
                    }
                    (_, Some(cut)) => {
                        if let Some(prev) = self.levels[n - 1].from
                            && cut <= prev
                        {
                            return bad(format!(
                                "levels[{n}].from ({cut}) must be above levels[{}].from ({prev}): cut scores go up",
                                n - 1
                            ));
                        }
                    }
                }
            }
        }
        if let Some(s) = &self.scale {
            let finite = [s.slope, s.intercept, s.min, s.max]
                .iter()
                .all(|x| x.is_finite());
            if !finite || s.slope == 0.0 {
                return bad(
                    "scale: slope, intercept, min and max must be finite, slope not 0".into(),
                );
            }
            if s.min >= s.max {
                return bad(format!(
                    "scale.min ({}) must be below scale.max ({})",
                    s.min, s.max
                ));
            }
            if s.decimals > 4 {
                return bad(format!(
                    "scale.decimals must be from 0 to 4 (got {})",
                    s.decimals
                ));
            }
        }
        Ok(())
    }
}

/// The cut scores of `levels`, lowest first.
pub fn cuts(levels: &[Level]) -> Vec<f64> {
    levels.iter().filter_map(|l| l.from).collect()
}

/// The label of the level θ falls in (the highest level whose cut θ reaches).
pub fn level_of(levels: &[Level], theta: f64) -> Option<&str> {
    levels
        .iter()
        .rev()
        .find(|l| l.from.is_none_or(|cut| theta >= cut))
        .map(|l| l.label.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's live state is postcard: the design's parts must read back from it.
    #[test]
    fn design_parts_survive_postcard_and_take_integral_floats_in_json() {
        let range = ItemRange { min: 2, max: 4 };
        let scale = Scale {
            slope: 50.0,
            intercept: 500.0,
            decimals: 1,
            min: 200.0,
            max: 800.0,
        };
        let bytes = postcard::to_stdvec(&(range, scale)).unwrap();
        assert_eq!(
            postcard::from_bytes::<(ItemRange, Scale)>(&bytes).unwrap(),
            (range, scale)
        );
        let json: ItemRange = serde_json::from_str(r#"{"min": 2.0, "max": 4}"#).unwrap();
        assert_eq!(json, range);
        assert!(serde_json::from_str::<ItemRange>(r#"{"min": 2.5, "max": 4}"#).is_err());
    }

    #[test]
    fn scale_scores_round_and_stay_in_bounds() {
        let s = Scale {
            slope: 50.0,
            intercept: 500.0,
            decimals: 0,
            min: 200.0,
            max: 800.0,
        };
        assert_eq!(
            s.score(0.123, 0.31),
            ScaleScore {
                score: 506.0,
                se: 16.0
            }
        );
        assert_eq!(s.score(9.0, 0.5).score, 800.0);
        assert_eq!(s.score(-9.0, 0.5).score, 200.0);
        let one = Scale { decimals: 1, ..s };
        assert_eq!(one.score(0.123, 0.3).score, 506.2);
    }

    #[test]
    fn levels_are_ordered_and_theta_lands_in_one() {
        let level = |label: &str, from| Level {
            label: label.into(),
            from,
        };
        let levels = vec![
            level("below", None),
            level("basic", Some(-0.5)),
            level("proficient", Some(0.5)),
        ];
        assert_eq!(level_of(&levels, -2.0), Some("below"));
        assert_eq!(level_of(&levels, -0.5), Some("basic"));
        assert_eq!(level_of(&levels, 0.7), Some("proficient"));
        let ok = DesignInput {
            levels: levels.clone(),
            ..Default::default()
        };
        assert!(ok.check().is_ok());
        assert_eq!(cuts(&ok.levels), vec![-0.5, 0.5]);
        let mut swapped = levels;
        swapped.swap(1, 2);
        let err = DesignInput {
            levels: swapped,
            ..Default::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(err.contains("levels[2].from"), "{err}");
    }
}
