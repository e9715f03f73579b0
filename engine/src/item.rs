//! [`Item`]: one item of any model, dichotomous or polytomous.

use super::model::{ItemParams, ParamError};
use super::poly::{PolyModel, PolyParams};

/// One item of any model: right/wrong (1PL–4PL, scores 0 and 1) or polytomous
/// (GRM, GPCM, PCM, scores 0…m). A bank may mix them freely.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A right/wrong item (score 1 for a correct answer).
    Dichotomous(ItemParams),
    /// A polytomous item.
    Polytomous(PolyParams),
}

impl From<ItemParams> for Item {
    fn from(p: ItemParams) -> Item {
        Item::Dichotomous(p)
    }
}

impl From<PolyParams> for Item {
    fn from(p: PolyParams) -> Item {
        Item::Polytomous(p)
    }
}

impl Item {
    /// A graded-response item (see [`PolyParams::new`]).
    pub fn grm(a: f64, thresholds: Vec<f64>) -> Result<Item, ParamError> {
        PolyParams::new(PolyModel::Grm, a, thresholds).map(Item::Polytomous)
    }

    /// A generalized partial credit item.
    pub fn gpcm(a: f64, steps: Vec<f64>) -> Result<Item, ParamError> {
        PolyParams::new(PolyModel::Gpcm, a, steps).map(Item::Polytomous)
    }

    /// A partial credit (Rasch) item: the GPCM with a = 1.
    pub fn pcm(steps: Vec<f64>) -> Result<Item, ParamError> {
        PolyParams::new(PolyModel::Pcm, 1.0, steps).map(Item::Polytomous)
    }

    /// Number of score categories: 2 for a dichotomous item, m + 1 otherwise.
    pub fn categories(&self) -> usize {
        match self {
            Item::Dichotomous(_) => 2,
            Item::Polytomous(p) => p.categories(),
        }
    }

    /// The highest score, categories − 1.
    pub fn max_score(&self) -> u8 {
        (self.categories() - 1) as u8
    }

    /// Discrimination `a`.
    pub fn a(&self) -> f64 {
        match self {
            Item::Dichotomous(p) => p.a,
            Item::Polytomous(p) => p.a(),
        }
    }

    /// The model's name: `grm`, `gpcm`, `pcm`, or for a dichotomous item the
    /// smallest of `1pl` (a = 1, c = 0, d = 1), `2pl`, `3pl`, `4pl` it fits.
    pub fn model_name(&self) -> &'static str {
        match self {
            Item::Polytomous(p) => p.model().name(),
            Item::Dichotomous(p) if p.d < 1.0 => "4pl",
            Item::Dichotomous(p) if p.c > 0.0 => "3pl",
            Item::Dichotomous(p) if p.a == 1.0 => "1pl",
            Item::Dichotomous(_) => "2pl",
        }
    }

    /// P(X = k | θ) for k = 0…categories − 1 (1 − P and P for a dichotomous item).
    pub fn probabilities(&self, theta: f64) -> Vec<f64> {
        match self {
            Item::Dichotomous(p) => {
                let right = p.probability(theta);
                vec![1.0 - right, right]
            }
            Item::Polytomous(p) => {
                let mut out = vec![0.0; p.categories()];
                p.probabilities(theta, &mut out);
                out
            }
        }
    }

    /// Expected score at θ (P for a dichotomous item).
    pub fn expected_score(&self, theta: f64) -> f64 {
        self.probabilities(theta)
            .iter()
            .enumerate()
            .map(|(k, p)| k as f64 * p)
            .sum()
    }

    /// Fisher information at θ; finite and ≥ 0.
    pub fn information(&self, theta: f64) -> f64 {
        match self {
            Item::Dichotomous(p) => p.information(theta),
            Item::Polytomous(p) => p.information(theta),
        }
    }

    /// The same item with its discrimination multiplied by the scaling constant D.
    pub fn scaled(self, scale: f64) -> Result<Item, ParamError> {
        match self {
            Item::Dichotomous(p) => p.scaled(scale).map(Item::Dichotomous),
            Item::Polytomous(p) => p.scaled(scale).map(Item::Polytomous),
        }
    }
}
