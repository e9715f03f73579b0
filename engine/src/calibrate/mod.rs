//! Item calibration: marginal maximum likelihood by EM (Bock & Aitkin 1981).
//!
//! θ is integrated out on a fixed quadrature grid of `Q` evenly spaced points on
//! [−6, 6] weighted by a normal latent density. Each iteration:
//!
//! - **E-step**: every person's posterior over the grid from the responses they
//!   gave (an item a person was not given contributes nothing: adaptive-test
//!   data is sparse, and a missing response is never read as wrong), then, per
//!   item and score category, the expected number of respondents at each point,
//!   r_ikq = Σ_{p answered i with score k} w_pq.
//! - **M-step**: each free item maximises Σ_q Σ_k r_ikq ln P_ik(θ_q) by Fisher
//!   scoring with step halving, in slope–intercept form (z = aθ + d), from the
//!   previous iteration's values. The 3PL's lower asymptote is estimated as
//!   logit c with a Beta(α, β) prior on c. When the scale is anchored by fixed
//!   items, the latent mean and SD are estimated too (and the SD alone when
//!   every free item has a fixed slope: 1PL, PCM).
//!
//! Iterations stop when no free parameter (nor the latent mean or SD) moved by
//! more than the tolerance. Standard errors come from the per-item cross-product
//! of the marginal scores at the solution (the "XPD" information, the item's
//! block of the observed information; each person's score for item i is
//! Σ_q w_pq ∂ln P_i,x(θ_q)/∂ξ), mapped to a, b and c by the delta method.
//!
//! Persons are cut into a fixed number of blocks (up to 16), each summing its
//! persons' posteriors into counts of its own (and, at the end, their
//! cross-products), added in block order; a run's threads (rayon, started
//! once) share out the blocks, and the items for the M-step. Every sum runs
//! in a fixed order, so results are bit-identical for any thread count. The
//! loops over the nodes run on rows padded to whole vectors, in AVX2 where the
//! CPU has it, with the same arithmetic either way ([`kernel`]), so results
//! do not depend on the CPU either. Memory is the posterior matrix (persons ×
//! Q doubles, Q padded to a multiple of 8), the blocks' counts (at most
//! 64 MiB) and the responses.

mod em;
mod free;
mod kernel;

use std::fmt;

use super::item::Item;
use super::poly::{MAX_CATEGORIES, PolyModel};
use em::Em;

/// Default number of quadrature points.
pub const DEFAULT_QUADRATURE: usize = 41;
/// The quadrature grid spans [−`GRID_EDGE`, `GRID_EDGE`].
pub const GRID_EDGE: f64 = 6.0;
/// Bounds of an estimated discrimination.
pub const A_RANGE: (f64, f64) = (0.05, 12.0);
/// Bounds of an estimated latent SD.
const LATENT_SD: (f64, f64) = (0.05, 5.0);
/// Bound of an estimated intercept |d| (|b| ≤ 40 / a).
const D_BOUND: f64 = 40.0;

/// A model a free item is calibrated under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// Rasch / one-parameter logistic: a = 1, difficulty b.
    OnePl,
    /// Two-parameter logistic: a and b.
    TwoPl,
    /// Three-parameter logistic: a, b and the lower asymptote c (with a Beta prior).
    ThreePl,
    /// A polytomous model (GRM, GPCM or PCM).
    Poly(PolyModel),
}

impl Model {
    /// The lowercase name (`1pl`, `2pl`, `3pl`, `grm`, `gpcm`, `pcm`).
    pub fn name(self) -> &'static str {
        match self {
            Model::OnePl => "1pl",
            Model::TwoPl => "2pl",
            Model::ThreePl => "3pl",
            Model::Poly(p) => p.name(),
        }
    }

    /// The model of that name.
    pub fn from_name(name: &str) -> Option<Model> {
        Some(match name {
            "1pl" => Model::OnePl,
            "2pl" => Model::TwoPl,
            "3pl" => Model::ThreePl,
            "grm" => Model::Poly(PolyModel::Grm),
            "gpcm" => Model::Poly(PolyModel::Gpcm),
            "pcm" => Model::Poly(PolyModel::Pcm),
            _ => return None,
        })
    }

    /// True when the model estimates a slope (so the latent SD cannot also be free).
    fn free_slope(self) -> bool {
        !matches!(self, Model::OnePl | Model::Poly(PolyModel::Pcm))
    }

    fn polytomous(self) -> bool {
        matches!(self, Model::Poly(_))
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do with one item of the data.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemSpec {
    /// Estimate it under `model`; a polytomous item has `categories` score
    /// categories (scores 0…categories − 1), or, when `None`, as many as its
    /// highest observed score + 1.
    Free {
        /// The model.
        model: Model,
        /// The number of categories of a polytomous item.
        categories: Option<usize>,
    },
    /// Keep these parameters: they anchor the scale (fixed-item calibration).
    Fixed(Item),
}

/// Settings of a calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Quadrature points on [−6, 6] (at least 5).
    pub quadrature: usize,
    /// Convergence: the largest change of any parameter in one iteration.
    pub tolerance: f64,
    /// Most EM iterations.
    pub max_iter: usize,
    /// Worker threads (0 = all available cores). Results do not depend on it.
    pub threads: usize,
    /// Beta(α, β) prior on the 3PL lower asymptote c.
    pub c_prior: (f64, f64),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quadrature: DEFAULT_QUADRATURE,
            tolerance: 1e-4,
            max_iter: 500,
            threads: 0,
            // BILOG-MG's default for five-option items: mean 0.2, worth 20 observations.
            c_prior: (5.0, 17.0),
        }
    }
}

/// Responses in sparse form: for each person, the items they were given and the
/// scores they got.
#[derive(Debug, Clone, PartialEq)]
pub struct Responses {
    persons: usize,
    items: usize,
    /// Person p's responses are `entries[start[p]..start[p + 1]]`, by item.
    start: Vec<usize>,
    entries: Vec<(u32, u8)>,
}

/// Bad response data.
#[derive(Debug, Clone, PartialEq)]
pub enum DataError {
    /// A person index was not below the number of persons.
    Person(u32),
    /// An item index was not below the number of items.
    Item(u32),
    /// The same person answered the same item twice.
    Duplicate {
        /// Person index.
        person: u32,
        /// Item index.
        item: u32,
    },
    /// `specs` does not have one entry per item.
    Specs {
        /// Items in the data.
        items: usize,
        /// Entries in `specs`.
        specs: usize,
    },
    /// A score is above the item's highest score.
    Score {
        /// Item index.
        item: usize,
        /// The score found.
        score: u8,
        /// The item's highest score.
        max: u8,
    },
    /// A polytomous item would have more than [`MAX_CATEGORIES`] categories, or fewer than 2.
    Categories {
        /// Item index.
        item: usize,
        /// The category count.
        categories: usize,
    },
    /// The configuration is unusable (message says why).
    Config(&'static str),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Person(p) => write!(f, "person index {p} out of range"),
            DataError::Item(i) => write!(f, "item index {i} out of range"),
            DataError::Duplicate { person, item } => {
                write!(f, "person {person} answered item {item} twice")
            }
            DataError::Specs { items, specs } => {
                write!(f, "{specs} item specifications for {items} items")
            }
            DataError::Score { item, score, max } => {
                write!(
                    f,
                    "item {item}: score {score} above its highest score {max}"
                )
            }
            DataError::Categories { item, categories } => write!(
                f,
                "item {item}: {categories} categories (a polytomous item has 2 to {MAX_CATEGORIES})"
            ),
            DataError::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DataError {}

impl Responses {
    /// Collects `(person, item, score)` triples for `persons` persons and `items`
    /// items, in any order.
    pub fn new(
        persons: usize,
        items: usize,
        mut triples: Vec<(u32, u32, u8)>,
    ) -> Result<Responses, DataError> {
        if let Some(&(p, _, _)) = triples.iter().find(|t| t.0 as usize >= persons) {
            return Err(DataError::Person(p));
        }
        if let Some(&(_, i, _)) = triples.iter().find(|t| t.1 as usize >= items) {
            return Err(DataError::Item(i));
        }
        triples.sort_unstable_by_key(|&(p, i, _)| (p, i));
        if let Some(w) = triples
            .windows(2)
            .find(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
        {
            return Err(DataError::Duplicate {
                person: w[0].0,
                item: w[0].1,
            });
        }
        let mut start = vec![0usize; persons + 1];
        for &(p, _, _) in &triples {
            start[p as usize + 1] += 1;
        }
        for p in 0..persons {
            start[p + 1] += start[p];
        }
        let entries = triples.into_iter().map(|(_, i, s)| (i, s)).collect();
        Ok(Responses {
            persons,
            items,
            start,
            entries,
        })
    }

    /// Number of persons.
    pub fn persons(&self) -> usize {
        self.persons
    }

    /// Number of items.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Number of responses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no response.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Person p's responses, `(item, score)` by item.
    pub fn person(&self, p: usize) -> &[(u32, u8)] {
        &self.entries[self.start[p]..self.start[p + 1]]
    }
}

/// Why an item was not calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Nobody answered it.
    NoResponses,
    /// Every response has the same score.
    OneScore(u8),
    /// No response scored `k` (a polytomous item needs every category).
    EmptyCategory(u8),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NoResponses => f.write_str("no responses"),
            Skip::OneScore(s) => write!(f, "every response scored {s}"),
            Skip::EmptyCategory(k) => write!(f, "no response scored {k}"),
        }
    }
}

/// Standard errors of an estimated item's parameters (`None`: not estimated).
#[derive(Debug, Clone, PartialEq)]
pub struct StdErrors {
    /// Of a.
    pub a: Option<f64>,
    /// Of b (one value) or of each threshold / step.
    pub b: Vec<f64>,
    /// Of c.
    pub c: Option<f64>,
}

/// The outcome for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Estimated.
    Estimated {
        /// The model it was estimated under.
        model: Model,
        /// Its parameters.
        item: Item,
        /// Their standard errors.
        se: StdErrors,
        /// Responses it was estimated from.
        responses: usize,
    },
    /// Kept as given.
    Fixed {
        /// Responses it had.
        responses: usize,
    },
    /// Not calibrated, and left out of the likelihood.
    Skipped(Skip),
}

/// A finished calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// One outcome per item, by item index.
    pub items: Vec<Outcome>,
    /// EM iterations run.
    pub iterations: usize,
    /// True when the tolerance was met before `max_iter`.
    pub converged: bool,
    /// Marginal log-likelihood of the responses used, at the solution.
    pub log_likelihood: f64,
    /// Free parameters (item parameters and free latent moments).
    pub parameters: usize,
    /// Persons with at least one response used.
    pub persons: usize,
    /// Responses used.
    pub responses: usize,
    /// Mean of the latent distribution (0 unless anchored by fixed items).
    pub latent_mean: f64,
    /// SD of the latent distribution (1 unless estimated).
    pub latent_sd: f64,
    /// True when the latent mean / SD were estimated.
    pub latent_free: (bool, bool),
}

impl Calibration {
    /// Akaike's information criterion, −2 ln L + 2k.
    pub fn aic(&self) -> f64 {
        -2.0 * self.log_likelihood + 2.0 * self.parameters as f64
    }

    /// Schwarz's Bayesian information criterion, −2 ln L + k ln n (n persons).
    pub fn bic(&self) -> f64 {
        -2.0 * self.log_likelihood + self.parameters as f64 * (self.persons.max(1) as f64).ln()
    }
}

/// Calibrates the free items of `specs` (one per item of `data`) from `data`.
/// `progress(iteration, largest change)` is called after each iteration.
pub fn calibrate(
    data: &Responses,
    specs: &[ItemSpec],
    config: &Config,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Calibration, DataError> {
    let mut em = Em::new(data, specs, config)?;
    let mut converged = false;
    let mut iterations = 0;
    // One EM step: the log-likelihood at the parameters it started from, and
    // the largest change it made.
    let mut step = |em: &mut Em<'_>, iterations: &mut usize| {
        let ll = em.e_step();
        let change = em.m_step();
        *iterations += 1;
        progress(*iterations, change);
        (ll, change)
    };
    // SQUAREM (Varadhan & Roland 2008, scheme S3): two EM steps x0 → x1 → x2,
    // then a jump along r = x1 − x0, v = x2 − 2x1 + x0 to
    // x′ = x0 − 2αr + α²v, α = −‖r‖/‖v‖ (≤ −1; −1 is the plain x2), and one
    // EM step from x′. A jump that leaves the parameter space, or whose
    // log-likelihood falls below x0's, is dropped for x2: every cycle does at
    // least as well as two plain EM steps.
    'cycles: while iterations < config.max_iter {
        let x0 = em.params();
        let (ll0, change) = step(&mut em, &mut iterations);
        if change < config.tolerance {
            converged = true;
            break;
        }
        let x1 = em.params();
        if iterations >= config.max_iter {
            break;
        }
        let (_, change) = step(&mut em, &mut iterations);
        if change < config.tolerance {
            converged = true;
            break;
        }
        let x2 = em.params();
        let (mut rr, mut vv) = (0.0_f64, 0.0_f64);
        for ((a, b), c) in x0.iter().zip(&x1).zip(&x2) {
            rr += (b - a) * (b - a);
            vv += (c - 2.0 * b + a) * (c - 2.0 * b + a);
        }
        if vv == 0.0 || iterations >= config.max_iter {
            continue;
        }
        let alpha = (-(rr / vv).sqrt()).clamp(-50.0, -1.0);
        if alpha == -1.0 {
            continue;
        }
        let jump: Vec<f64> = x0
            .iter()
            .zip(&x1)
            .zip(&x2)
            .map(|((a, b), c)| {
                let (r, v) = (b - a, c - 2.0 * b + a);
                a - 2.0 * alpha * r + alpha * alpha * v
            })
            .collect();
        if !em.set_params(&jump) {
            continue;
        }
        let (ll, change) = step(&mut em, &mut iterations);
        if ll.is_nan() || ll < ll0 {
            let back = em.set_params(&x2);
            debug_assert!(back, "x2 came from an EM step");
            continue 'cycles;
        }
        if change < config.tolerance {
            converged = true;
            break;
        }
    }
    let log_likelihood = em.e_step();
    Ok(em.finish(iterations, converged, log_likelihood))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_checked() {
        assert_eq!(
            Responses::new(2, 2, vec![(0, 1, 1), (0, 1, 0)]).unwrap_err(),
            DataError::Duplicate { person: 0, item: 1 }
        );
        assert_eq!(
            Responses::new(2, 2, vec![(2, 0, 1)]).unwrap_err(),
            DataError::Person(2)
        );
        assert_eq!(
            Responses::new(2, 2, vec![(0, 5, 1)]).unwrap_err(),
            DataError::Item(5)
        );
        let r = Responses::new(3, 2, vec![(2, 1, 1), (0, 1, 0), (0, 0, 1)]).unwrap();
        assert_eq!(r.person(0), &[(0, 1), (1, 0)]);
        assert_eq!(r.person(1), &[]);
        assert_eq!(r.person(2), &[(1, 1)]);
    }
}
