//! A test's configuration: what a client may set, the defaults, the limits,
//! and the engine it builds.

use serde::{Deserialize, Deserializer, Serialize};

use super::Error;
use crate::engine::{self, Estimator, NormalPrior};

/// Which estimator updates θ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimatorKind {
    /// Expected a posteriori (default).
    Eap,
    /// Maximum a posteriori.
    Map,
    /// Maximum likelihood, bounded to ±6.
    Mle,
}

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
    max_items: Option<u32>,
    min_items: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    se_target: Option<Option<f64>>,
    estimator: Option<EstimatorKind>,
    selector: Option<SelectorKind>,
    randomesque: Option<u32>,
}

// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The effective configuration of one test.
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
}

impl TestConfig {
    /// Applies defaults and checks ranges.
    pub fn resolve(input: TestConfigInput) -> Result<Self, Error> {
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
        Ok(Self {
            max_items,
            min_items,
            se_target,
            estimator: input.estimator.unwrap_or(EstimatorKind::Eap),
            selector: input.selector.unwrap_or(SelectorKind::MaxInfo),
            randomesque,
        })
    }

    pub(super) fn estimator(&self, prior: NormalPrior) -> Box<dyn Estimator> {
        match self.estimator {
            EstimatorKind::Eap => Box::new(engine::Eap::new(prior)),
            EstimatorKind::Map => Box::new(engine::Map::new(prior)),
            EstimatorKind::Mle => Box::new(engine::Mle::default()),
        }
    }

    pub(super) fn engine(&self, prior: NormalPrior) -> engine::Cat {
        let selector: Box<dyn engine::Selector> = match (self.selector, self.randomesque) {
            (SelectorKind::MaxInfo, 1) => Box::new(engine::MaxInfo),
            (SelectorKind::MaxInfo, k) => Box::new(engine::Randomesque { k: k as usize }),
        };
        engine::Cat {
            estimator: self.estimator(prior),
            selector,
            stop: engine::StopRule {
                max_items: self.max_items as usize,
                min_items: self.min_items as usize,
                se_target: self.se_target,
            },
        }
    }
}
