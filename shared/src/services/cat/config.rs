//! A test's configuration: what a client may set, the defaults, the limits,
//! and the engine it builds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Error;
use super::design::{DesignInput, ItemRange, Level, Mode, Scale};
use crate::store::pools::PoolBank;
use lectern_engine::{self as engine, EstimatorKind, Start};

/// Which rule picks the next item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorKind {
    /// Maximum Fisher information at the current θ.
    MaxInfo,
}

/// The optional `config` of `POST /v1/tests`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfigInput {
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    max_items: Option<u32>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    min_items: Option<u32>,
    // An explicit `null` (no SE rule) is not an absent field (the default).
    #[serde(default, deserialize_with = "crate::wire::nullable")]
    se_target: Option<Option<f64>>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    estimator: Option<EstimatorKind>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    selector: Option<SelectorKind>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    randomesque: Option<u32>,
    // Nullable in the spec, as are `cut_score` and `start_theta`: null is the default.
    content_balance: Option<BTreeMap<String, f64>>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    exposure_control: Option<bool>,
    cut_score: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    confidence: Option<f64>,
    start_theta: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    pretest_items: Option<u32>,
}

fn default_confidence() -> f64 {
    0.95
}

/// The effective configuration of one test.
///
/// Fields added after the first release carry serde defaults, so configurations
/// stored by an older version (in PostgreSQL or Redis) still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    /// Stop after this many items.
    pub max_items: u32,
    /// Never stop before this many items.
    pub min_items: u32,
    /// Stop once the standard error is at or below this; `None` disables the rule.
    pub se_target: Option<f64>,
    /// θ estimator.
    pub estimator: EstimatorKind,
    /// Item selector.
    pub selector: SelectorKind,
    /// Choose at random among this many most informative items (1 = pure maximum information).
    pub randomesque: u32,
    /// Target share of items per concept name (content balancing): the weights
    /// sent, rescaled to sum to 1.
    #[serde(default)]
    pub content_balance: Option<BTreeMap<String, f64>>,
    /// Sympson–Hetter exposure control with the items' `exposure` parameters.
    #[serde(default)]
    pub exposure_control: bool,
    /// Stop once θ ± z·SE excludes this cut score (classification test).
    #[serde(default)]
    pub cut_score: Option<f64>,
    /// Two-sided confidence level of the classification interval.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Fixed θ to choose the first item at; `None` starts from the student's proficiency.
    #[serde(default)]
    pub start_theta: Option<f64>,
    /// Practice (feedback after each answer) or exam (none until released).
    #[serde(default)]
    pub mode: Mode,
    /// Items per concept name, honoured by selection.
    #[serde(default)]
    pub blueprint: BTreeMap<String, ItemRange>,
    /// Groups of question ids never given in one test.
    #[serde(default)]
    pub enemies: Vec<Vec<String>>,
    /// Seconds from start to the deadline (before any accommodation).
    #[serde(default)]
    pub time_limit_s: Option<i64>,
    /// Performance levels, lowest first; the test stops once θ's interval lies in one.
    #[serde(default)]
    pub levels: Vec<Level>,
    /// The reported scale score.
    #[serde(default)]
    pub scale: Option<Scale>,
    /// Pretest items each test carries (see [`engine::PretestPlan`]): served
    /// and recorded, never scored. Last, so that a live state an older
    /// release wrote reads as one without (see `state::LiveState::decode`).
    #[serde(default)]
    pub pretest_items: u32,
}

/// At most this many pretest items per test.
pub const MAX_PRETEST_ITEMS: u32 = 10;

/// At most this many concepts in `content_balance`.
const MAX_BALANCED: usize = engine::select::MAX_TARGETS;
/// Largest weight in `content_balance` (weights are relative).
const MAX_WEIGHT: f64 = 1000.0;

impl TestConfig {
    /// Applies defaults and checks ranges (what needs the pool is checked by
    /// [`TestConfig::check_against`]).
    pub fn resolve(input: TestConfigInput) -> Result<Self, Error> {
        Self::resolve_for(input, false)
    }

    /// An assessment's configuration: the engine's, then the rest of its design.
    pub fn designed(input: TestConfigInput, design: DesignInput) -> Result<Self, Error> {
        design.check()?;
        if !design.levels.is_empty() && input.cut_score.is_some() {
            return Err(Error::InvalidConfig(
                "config.cut_score and levels both classify: give levels only (a single cut is two levels)".into(),
            ));
        }
        let mut config = Self::resolve_for(input, !design.levels.is_empty())?;
        config.mode = design.mode;
        config.blueprint = design.blueprint;
        config.enemies = design.enemies;
        config.time_limit_s = design.time_limit_s;
        config.levels = design.levels;
        config.scale = design.scale;
        Ok(config)
    }

    fn resolve_for(input: TestConfigInput, levels: bool) -> Result<Self, Error> {
        let max_items = input.max_items.unwrap_or(20);
        let min_items = input.min_items.unwrap_or(5.min(max_items));
        let se_target = input.se_target.unwrap_or(Some(0.3));
        let randomesque = input.randomesque.unwrap_or(1);
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if !(1..=200).contains(&max_items) {
            return bad(format!(
                "config.max_items must be from 1 to 200 (got {max_items})"
            ));
        }
        if min_items > max_items {
            return bad(format!(
                "config.min_items ({min_items}) must not exceed config.max_items ({max_items})"
            ));
        }
        if let Some(se) = se_target
            && !(0.05..=2.0).contains(&se)
        {
            return bad(format!(
                "config.se_target must be from 0.05 to 2 or null (got {se})"
            ));
        }
        if !(1..=20).contains(&randomesque) {
            return bad(format!(
                "config.randomesque must be from 1 to 20 (got {randomesque})"
            ));
        }
        if let Some(targets) = &input.content_balance {
            if !(1..=MAX_BALANCED).contains(&targets.len()) {
                return bad(format!(
                    "config.content_balance must name 1 to {MAX_BALANCED} concepts (got {})",
                    targets.len()
                ));
            }
            if let Some((name, weight)) = targets
                .iter()
                .find(|&(_, &w)| !(w > 0.0 && w <= MAX_WEIGHT))
            {
                return bad(format!(
                    "config.content_balance.{name} must be a weight in (0, {MAX_WEIGHT}] (got {weight}); weights are rescaled to sum to 1"
                ));
            }
        }
        if let Some(cut) = input.cut_score
            && !(-6.0..=6.0).contains(&cut)
        {
            return bad(format!("config.cut_score must be from -6 to 6 (got {cut})"));
        }
        if input.confidence.is_some() && input.cut_score.is_none() && !levels {
            return bad("config.confidence needs config.cut_score (or levels)".into());
        }
        let confidence = input.confidence.unwrap_or_else(default_confidence);
        if !(0.5..=0.999).contains(&confidence) {
            return bad(format!(
                "config.confidence must be from 0.5 to 0.999 (got {confidence})"
            ));
        }
        if let Some(theta) = input.start_theta
            && !(-6.0..=6.0).contains(&theta)
        {
            return bad(format!(
                "config.start_theta must be from -6 to 6 (got {theta})"
            ));
        }
        let pretest_items = input.pretest_items.unwrap_or(0);
        if pretest_items > MAX_PRETEST_ITEMS {
            return bad(format!(
                "config.pretest_items must be from 0 to {MAX_PRETEST_ITEMS} (got {pretest_items})"
            ));
        }
        if pretest_items > 0 && max_items < 2 {
            return bad(format!(
                "config.pretest_items needs config.max_items of at least 2: a pretest item never comes first, nor after the last operational item (max_items is {max_items})"
            ));
        }
        let content_balance = input.content_balance.map(|targets| {
            let total: f64 = targets.values().sum();
            targets.into_iter().map(|(c, p)| (c, p / total)).collect()
        });
        Ok(Self {
            max_items,
            min_items,
            se_target,
            estimator: input.estimator.unwrap_or(EstimatorKind::Eap),
            selector: input.selector.unwrap_or(SelectorKind::MaxInfo),
            randomesque,
            content_balance,
            exposure_control: input.exposure_control.unwrap_or(false),
            cut_score: input.cut_score,
            confidence,
            start_theta: input.start_theta,
            mode: Mode::Practice,
            blueprint: BTreeMap::new(),
            enemies: Vec::new(),
            time_limit_s: None,
            levels: Vec::new(),
            scale: None,
            pretest_items,
        })
    }

    /// Checks what depends on the pool: every balanced concept must tag some item.
    pub fn check_against(&self, bank: &PoolBank) -> Result<(), Error> {
        for name in self.content_balance.iter().flat_map(BTreeMap::keys) {
            if bank.concept_id(name).is_none() {
                return Err(Error::InvalidConfig(format!(
                    "config.content_balance: no item of this pool is tagged {name:?} (its concepts: {})",
                    bank.concept_names.join(", ")
                )));
            }
        }
        if let Some(name) = self
            .blueprint
            .keys()
            .find(|name| bank.concept_id(name).is_none())
        {
            return Err(Error::InvalidConfig(format!(
                "blueprint.{name}: no item of this pool is tagged {name:?} (its concepts: {})",
                bank.concept_names.join(", ")
            )));
        }
        for (n, set) in self.enemies.iter().enumerate() {
            if let Some(id) = set.iter().find(|id| bank.index_of(id).is_none()) {
                let why = if bank.pretest_index_of(id).is_some() {
                    "is a pretest item (enemy sets are of operational items)"
                } else {
                    "is not in this pool"
                };
                return Err(Error::InvalidConfig(format!(
                    "enemies[{n}]: question {id:?} {why}"
                )));
            }
        }
        // Whether the pool can meet the blueprint (an enemy set gives one item at most).
        if let Some(c) = self.constraints(bank) {
            c.check(&bank.bank, self.min_items as usize, self.max_items as usize)
                .map_err(|why| {
                    // The engine names concepts by id; the request named them.
                    let named = self.blueprint.keys().fold(why, |why, name| {
                        let id = bank.concept_id(name).unwrap_or_default();
                        why.replace(&format!("concept {id} "), &format!("{name:?} "))
                    });
                    Error::InvalidConfig(named)
                })?;
        }
        Ok(())
    }

    /// Checks, when a design is written, that the pool has the pretest items
    /// it asks for. A test started later on a version with fewer (once
    /// pretest items are promoted) serves as many as there are.
    pub fn check_pretest_supply(&self, bank: &PoolBank) -> Result<(), Error> {
        let available = bank.pretest_ids.len();
        if self.pretest_items as usize > available {
            return Err(Error::InvalidConfig(format!(
                "config.pretest_items: version {} of pool {} has {available} pretest items (asked for {})",
                bank.version, bank.pool_id, self.pretest_items
            )));
        }
        Ok(())
    }

    /// Where a test seeded `seed` on `bank` serves its pretest items: a pure
    /// function of the seed, this configuration and the pool version.
    pub fn pretest_plan(&self, seed: u64, bank: &PoolBank) -> engine::PretestPlan {
        if self.pretest_items == 0 {
            return engine::PretestPlan::default();
        }
        engine::PretestPlan::new(
            seed,
            self.pretest_items,
            self.max_items,
            bank.pretest_ids.len(),
        )
    }

    /// The label of the performance level `theta` falls in, when there are levels.
    pub fn level(&self, theta: f64) -> Option<&str> {
        super::design::level_of(&self.levels, theta)
    }

    /// Where a test with this configuration starts, given the student's prior.
    pub fn start(&self, prior: engine::NormalPrior) -> Start {
        Start {
            theta: self.start_theta.unwrap_or(prior.mean),
            prior,
        }
    }

    /// The engine for a test on `bank` whose prior is `prior`.
    pub fn engine(&self, prior: engine::NormalPrior, bank: &PoolBank) -> engine::Cat {
        let base = || -> Box<dyn engine::Selector> {
            match (self.selector, self.randomesque) {
                (SelectorKind::MaxInfo, 1) => Box::new(engine::MaxInfo),
                (SelectorKind::MaxInfo, k) => Box::new(engine::Randomesque { k: k as usize }),
            }
        };
        let mut selector = base();
        if let Some(targets) = &self.content_balance {
            let ids: Vec<(u16, f64)> = targets
                .iter()
                .filter_map(|(name, &p)| Some((bank.concept_id(name)?, p)))
                .collect();
            // Checked at start against this very pool version, so this only fails
            // on a corrupt record: the test then goes on without balancing.
            selector = match engine::ContentBalanced::new(ids, selector) {
                Ok(balanced) => Box::new(balanced),
                Err(_) => base(),
            };
        }
        if self.exposure_control {
            selector = Box::new(engine::SympsonHetter::new(selector));
        }
        let stop = engine::StopRule {
            max_items: self.max_items as usize,
            min_items: self.min_items as usize,
            se_target: self.se_target,
            classify: self.classify(),
            levels: self.stop_levels(),
        };
        let cat = engine::Cat::from_start(self.start(prior), self.estimator, selector, stop);
        match self.constraints(bank) {
            Some(c) => cat.with_constraints(c),
            None => cat,
        }
    }

    /// The blueprint and enemy sets in engine terms (names and ids that are
    /// not in `bank` were refused by [`TestConfig::check_against`]).
    fn constraints(&self, bank: &PoolBank) -> Option<engine::Constraints> {
        if self.blueprint.is_empty() && self.enemies.is_empty() {
            return None;
        }
        let blueprint: Vec<(u16, u32, u32)> = self
            .blueprint
            .iter()
            .filter_map(|(name, r)| Some((bank.concept_id(name)?, r.min, r.max)))
            .collect();
        let enemies: Vec<Vec<usize>> = self
            .enemies
            .iter()
            .map(|set| set.iter().filter_map(|id| bank.index_of(id)).collect())
            .collect();
        Some(engine::Constraints::new(&blueprint, &enemies))
    }

    /// The performance levels' stop: once θ's interval lies inside one level.
    fn stop_levels(&self) -> Option<engine::Levels> {
        let cuts = super::design::cuts(&self.levels);
        // Checked when the design was written; an unusable set only stops no test.
        (!cuts.is_empty())
            .then(|| engine::Levels::new(&cuts, self.confidence).ok())
            .flatten()
    }

    /// The classification interval, when this is a classification test.
    pub fn classify(&self) -> Option<engine::Classify> {
        self.cut_score
            .map(|cut| engine::Classify::new(cut, self.confidence))
    }
}
