//! Monte Carlo simulation of adaptive tests, the way psychometricians check a CAT
//! design before it meets students: draw examinees with known θ, let each answer
//! by the model, run the test, then compare the estimates with the truth.
//!
//! Each examinee is simulated from its own RNG, keyed by (seed, examinee index),
//! so results do not depend on how many threads run or in which order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::bank::ItemBank;
use super::cat::Cat;
use super::estimate::{Eap, Estimate};
use super::model::ItemParams;
use super::poly::{PolyModel, PolyParams};
use super::stop::StopReason;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of simulated examinees.
    pub examinees: usize,
    /// Seed of everything random: true abilities, answers, and each test's selector seed.
    pub seed: u64,
    /// True abilities are drawn from N(`theta_mean`, `theta_sd`²).
    pub theta_mean: f64,
    /// See `theta_mean`; 0 gives every examinee the same θ.
    pub theta_sd: f64,
    /// Worker threads (0 = all available cores).
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            examinees: 1000,
            seed: 1,
            theta_mean: 0.0,
            theta_sd: 1.0,
            threads: 0,
        }
    }
}

/// One simulated examinee.
#[derive(Debug, Clone, PartialEq)]
pub struct Examinee {
    /// The ability the answers were generated from.
    pub true_theta: f64,
    /// The final estimate.
    pub estimate: Estimate,
    /// Administered items, in order.
    pub items: Vec<usize>,
    /// `answers[i]` is the score of `items[i]` (1 or 0 for a dichotomous item).
    pub answers: Vec<u8>,
    /// Why the test ended.
    pub stop: StopReason,
}

/// A finished simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Every examinee, in index order.
    pub examinees: Vec<Examinee>,
    /// Number of items in the bank.
    pub bank_len: usize,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

/// The figures a simulation is judged by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of examinees.
    pub examinees: usize,
    /// Mean of (θ̂ − θ).
    pub bias: f64,
    /// √mean((θ̂ − θ)²).
    pub rmse: f64,
    /// Mean reported standard error.
    pub mean_se: f64,
    /// Correlation of θ̂ with θ.
    pub correlation: f64,
    /// Mean test length.
    pub mean_length: f64,
    /// Shortest test.
    pub min_length: usize,
    /// Longest test.
    pub max_length: usize,
    /// Highest item exposure rate (share of examinees who saw the item).
    pub max_exposure: f64,
    /// Mean share of items two examinees have in common (Chen, Ankenmann & Spray 2003).
    pub overlap_rate: f64,
    /// Items nobody was given.
    pub never_used: usize,
    /// Wall-clock time in seconds.
    pub wall_seconds: f64,
}

/// Bias, RMSE and mean SE of the examinees whose true θ falls in `[lo, hi)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, except for the last bin).
    pub hi: f64,
    /// Examinees in the bin.
    pub n: usize,
    /// Mean (θ̂ − θ); NaN when the bin is empty.
    pub bias: f64,
    /// √mean((θ̂ − θ)²); NaN when the bin is empty.
    pub rmse: f64,
    /// Mean reported SE; NaN when the bin is empty.
    pub mean_se: f64,
    /// Mean test length; NaN when the bin is empty.
    pub mean_length: f64,
}

/// A standard normal draw (Box–Muller; the second value is discarded so that each
/// draw uses a fixed amount of the stream).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// How [`generate_bank`] draws its items.
pub const GENERATED_RECIPE: &str =
    "3PL: a ~ U(0.8, 2.0), b ~ N(0, 1.2²) clipped to [-3.5, 3.5], c ~ U(0.05, 0.25), d = 1";

/// A reproducible bank of `n` items for simulations and benchmarks, drawn as
/// [`GENERATED_RECIPE`] says, with no concept tags.
pub fn generate_bank(n: usize, seed: u64) -> ItemBank {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let items = (0..n)
        .map(|_| {
            let a = 0.8 + 1.2 * rng.random::<f64>();
            let b = (1.2 * standard_normal(&mut rng)).clamp(-3.5, 3.5);
            let c = 0.05 + 0.2 * rng.random::<f64>();
            ItemParams::new(a, b, c, 1.0).expect("generated parameters are valid")
        })
        .collect();
    ItemBank::without_concepts(items)
}

/// How [`generate_polytomous_bank`] draws its items.
pub const GENERATED_POLYTOMOUS_RECIPE: &str = "location β ~ N(0, 1) clipped to [-2.5, 2.5]; \
     thresholds (steps) β + m evenly spaced offsets over [-1.5, 1.5] (one per threshold) plus N(0, 0.15²) \
     jitter, sorted, at least 0.15 apart; a ~ U(0.8, 2.2) (1 for the PCM)";

/// A reproducible bank of `n` polytomous items with `categories` categories
/// (2 to [`crate::MAX_CATEGORIES`], clamped), drawn as
/// [`GENERATED_POLYTOMOUS_RECIPE`] says, with no concept tags.
pub fn generate_polytomous_bank(
    model: PolyModel,
    n: usize,
    categories: usize,
    seed: u64,
) -> ItemBank {
    let m = categories.clamp(2, crate::MAX_CATEGORIES) - 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let items: Vec<PolyParams> = (0..n)
        .map(|_| {
            let a = 0.8 + 1.4 * rng.random::<f64>();
            let beta = standard_normal(&mut rng).clamp(-2.5, 2.5);
            let mut b: Vec<f64> = (0..m)
                .map(|k| {
                    let offset = if m == 1 {
                        0.0
                    } else {
                        -1.5 + 3.0 * k as f64 / (m - 1) as f64
                    };
                    beta + offset + 0.15 * standard_normal(&mut rng)
                })
                .collect();
            b.sort_by(f64::total_cmp);
            for k in 1..m {
                b[k] = b[k].max(b[k - 1] + 0.15);
            }
            let a = if model == PolyModel::Pcm { 1.0 } else { a };
            PolyParams::new(model, a, b).expect("generated parameters are valid")
        })
        .collect();
    ItemBank::without_concepts(items)
}

/// Runs one examinee: θ from the distribution, answers drawn from the model.
fn run_one(cat: &Cat, bank: &ItemBank, cfg: &SimConfig, index: usize) -> Examinee {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    key[16] = 0x51; // a different stream from the tests' selection RNG
    let mut rng = ChaCha8Rng::from_seed(key);
    let true_theta = cfg.theta_mean + cfg.theta_sd * standard_normal(&mut rng);
    let test_seed = rng.random::<u64>();
    let mut items = Vec::with_capacity(cat.stop.max_items.min(bank.len()));
    let mut answers = Vec::with_capacity(items.capacity());
    // EAP keeps one running posterior (bit-identical to re-estimating).
    let mut posterior = cat.estimator.as_eap().map(Eap::posterior);
    loop {
        let step = match &posterior {
            Some(p) => {
                let estimate = p.estimate(bank, &items, &answers);
                cat.step_from(bank, &items, &answers, test_seed, estimate)
            }
            None => cat.step(bank, &items, &answers, test_seed),
        };
        match (step.next, step.stop) {
            (Some(next), _) => {
                let score = bank.draw(next, true_theta, rng.random::<f64>());
                if let Some(p) = &mut posterior {
                    p.push(bank, next, score);
                }
                items.push(next);
                answers.push(score);
            }
            (None, stop) => {
                return Examinee {
                    true_theta,
                    estimate: step.estimate,
                    items,
                    answers,
                    stop: stop.unwrap_or(StopReason::BankExhausted),
                };
            }
        }
    }
}

/// Simulates `cfg.examinees` tests with `cat` on `bank`, calling `progress` with
/// the number of examinees done so far (from the worker threads, at most about a
/// hundred times in all).
pub fn simulate(
    cat: &Cat,
    bank: &ItemBank,
    cfg: &SimConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Simulation {
    let started = Instant::now();
    let n = cfg.examinees;
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    }
    .clamp(1, n.max(1));
    let done = AtomicUsize::new(0);
    let report_every = (n / 100).max(1);
    let mut examinees: Vec<Option<Examinee>> = vec![None; n];
    // Each thread takes one contiguous, disjoint slice of the examinees.
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (t, slots) in examinees.chunks_mut(chunk).enumerate() {
            let done = &done;
            scope.spawn(move || {
                for (j, slot) in slots.iter_mut().enumerate() {
                    *slot = Some(run_one(cat, bank, cfg, t * chunk + j));
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if finished % report_every == 0 || finished == n {
                        progress(finished);
                    }
                }
            });
        }
    });
    Simulation {
        examinees: examinees.into_iter().flatten().collect(),
        bank_len: bank.len(),
        wall: started.elapsed(),
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

impl Simulation {
    /// How many examinees saw each item.
    pub fn exposure_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.bank_len];
        for e in &self.examinees {
            for &i in &e.items {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Exposure rate of each item: the share of examinees who saw it.
    pub fn exposure(&self) -> Vec<f64> {
        let n = self.examinees.len().max(1) as f64;
        self.exposure_counts()
            .into_iter()
            .map(|c| c as f64 / n)
            .collect()
    }

    /// The headline figures.
    pub fn summary(&self) -> Summary {
        let es = &self.examinees;
        let n = es.len();
        let errors = || es.iter().map(|e| e.estimate.theta - e.true_theta);
        let bias = mean(errors());
        let rmse = mean(errors().map(|x| x * x)).sqrt();
        let lengths = || es.iter().map(|e| e.items.len());
        let mean_length = mean(lengths().map(|l| l as f64));
        let counts = self.exposure_counts();
        // Σ c(c − 1) counts the ordered pairs of examinees sharing an item; divided by
        // the number of pairs and the mean length, the mean share of a test two
        // examinees have in common.
        let shared: f64 = counts.iter().map(|&c| c as f64 * (c as f64 - 1.0)).sum();
        let overlap_rate = if n > 1 && mean_length > 0.0 {
            shared / (n as f64 * (n as f64 - 1.0) * mean_length)
        } else {
            f64::NAN
        };
        Summary {
            examinees: n,
            bias,
            rmse,
            mean_se: mean(es.iter().map(|e| e.estimate.se)),
            correlation: correlation(es),
            mean_length,
            min_length: lengths().min().unwrap_or(0),
            max_length: lengths().max().unwrap_or(0),
            max_exposure: counts
                .iter()
                .max()
                .map_or(0.0, |&c| c as f64 / n.max(1) as f64),
            overlap_rate,
            never_used: counts.iter().filter(|&&c| c == 0).count(),
            wall_seconds: self.wall.as_secs_f64(),
        }
    }

    /// Conditional statistics in `bins` equal-width bins of true θ over `[lo, hi]`;
    /// examinees outside the range are left out.
    pub fn conditional(&self, lo: f64, hi: f64, bins: usize) -> Vec<Bin> {
        let bins = bins.max(1);
        let width = (hi - lo) / bins as f64;
        (0..bins)
            .map(|k| {
                let (b_lo, b_hi) = (lo + width * k as f64, lo + width * (k + 1) as f64);
                let last = k + 1 == bins;
                let inside = |e: &&Examinee| {
                    e.true_theta >= b_lo && (e.true_theta < b_hi || (last && e.true_theta <= b_hi))
                };
                let members = || self.examinees.iter().filter(inside);
                let err = |e: &Examinee| e.estimate.theta - e.true_theta;
                Bin {
                    lo: b_lo,
                    hi: b_hi,
                    n: members().count(),
                    bias: mean(members().map(err)),
                    rmse: mean(members().map(|e| err(e) * err(e))).sqrt(),
                    mean_se: mean(members().map(|e| e.estimate.se)),
                    mean_length: mean(members().map(|e| e.items.len() as f64)),
                }
            })
            .collect()
    }
}

/// Pearson correlation of estimated and true θ (NaN when undefined).
fn correlation(es: &[Examinee]) -> f64 {
    let mx = mean(es.iter().map(|e| e.true_theta));
    let my = mean(es.iter().map(|e| e.estimate.theta));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for e in es {
        let (dx, dy) = (e.true_theta - mx, e.estimate.theta - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::estimate::{Eap, Estimator};
    use super::super::item::Item;
    use super::super::select::{MaxInfo, Randomesque};
    use super::super::stop::StopRule;
    use super::*;

    fn cat(max_items: usize, k: usize) -> Cat {
        Cat::new(
            Box::new(Eap::default()),
            if k > 1 {
                Box::new(Randomesque { k })
            } else {
                Box::new(MaxInfo)
            },
            StopRule {
                max_items,
                ..StopRule::default()
            },
        )
    }

    #[test]
    fn generated_banks_are_reproducible_3pl() {
        let bank = generate_bank(300, 9);
        assert_eq!(bank, generate_bank(300, 9));
        assert_ne!(bank, generate_bank(300, 10));
        for i in 0..bank.len() {
            let Item::Dichotomous(p) = bank.item(i) else {
                panic!("item {i} is not dichotomous")
            };
            assert!((0.8..=2.0).contains(&p.a) && p.b.abs() <= 3.5, "{p:?}");
            assert!((0.05..=0.25).contains(&p.c) && p.d == 1.0, "{p:?}");
        }
    }

    #[test]
    fn results_do_not_depend_on_threads() {
        let bank = generate_bank(120, 3);
        let cat = cat(10, 3);
        let cfg = |threads| SimConfig {
            examinees: 37,
            seed: 5,
            threads,
            ..SimConfig::default()
        };
        let calls = AtomicUsize::new(0);
        let one = simulate(&cat, &bank, &cfg(1), &|_| {
            calls.fetch_add(1, Ordering::Relaxed);
        });
        let three = simulate(&cat, &bank, &cfg(3), &|_| {});
        assert_eq!(one.examinees, three.examinees);
        assert_eq!(calls.load(Ordering::Relaxed), 37);
        let other = simulate(&cat, &bank, &SimConfig { seed: 6, ..cfg(2) }, &|_| {});
        assert_ne!(one.examinees, other.examinees);
        for e in &one.examinees {
            assert_eq!(e.items.len(), 10);
            assert_eq!(e.stop, StopReason::MaxItems);
            // The final estimate is the estimator's on the examinee's answers.
            assert_eq!(
                e.estimate,
                Eap::default().estimate(&bank, &e.items, &e.answers)
            );
        }
    }

    #[test]
    fn summary_figures_follow_their_definitions() {
        let est = |theta, items: Vec<usize>| Examinee {
            true_theta: 0.0,
            estimate: Estimate { theta, se: 0.5 },
            answers: vec![1; items.len()],
            items,
            stop: StopReason::MaxItems,
        };
        let sim = Simulation {
            examinees: vec![
                est(0.5, vec![0, 1]),
                est(-0.1, vec![1, 2]),
                est(0.2, vec![1, 3]),
            ],
            bank_len: 5,
            wall: Duration::from_millis(3),
        };
        let s = sim.summary();
        assert!((s.bias - 0.2).abs() < 1e-12);
        assert!((s.rmse - ((0.25 + 0.01 + 0.04) / 3.0f64).sqrt()).abs() < 1e-12);
        assert_eq!((s.min_length, s.max_length, s.never_used), (2, 2, 1));
        assert!((s.max_exposure - 1.0).abs() < 1e-12);
        // Every pair shares item 1 only: overlap 1 of 2 items.
        assert!((s.overlap_rate - 0.5).abs() < 1e-12);
        assert_eq!(sim.exposure_counts(), vec![1, 3, 1, 1, 0]);
        let bins = sim.conditional(-1.0, 1.0, 2);
        assert_eq!((bins[0].n, bins[1].n), (0, 3));
        assert!(bins[0].bias.is_nan());
        assert!((bins[1].bias - 0.2).abs() < 1e-12);
    }

    /// Parameter recovery: 2,000 examinees, 40-item tests on a good 500-item bank.
    #[test]
    fn parameter_recovery() {
        let bank = generate_bank(500, 11);
        let sim = simulate(
            &cat(40, 1),
            &bank,
            &SimConfig {
                examinees: 2000,
                seed: 2026,
                ..SimConfig::default()
            },
            &|_| {},
        );
        let s = sim.summary();
        assert!(s.bias.abs() < 0.05, "{s:?}");
        assert!(s.rmse < 0.35, "{s:?}");
        assert!(s.correlation > 0.9, "{s:?}");
        assert!((s.mean_length - 40.0).abs() < 1e-12);
    }
}
