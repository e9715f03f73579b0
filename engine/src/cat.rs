//! One adaptive test: estimate, then stop or select, as a pure function of the
//! answers so far.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bank::ItemBank;
use super::constraints::Constraints;
use super::estimate::{Estimate, Estimator, EstimatorKind};
use super::init::Start;
use super::select::{Candidates, Selector};
use super::stop::{StopReason, StopRule};

/// One adaptive test's engine: initializer's start, estimator, selector, stop rule
/// (catsim's four parts), and optional content constraints.
pub struct Cat {
    /// How θ is estimated after each answer.
    pub estimator: Box<dyn Estimator>,
    /// How the next item is chosen.
    pub selector: Box<dyn Selector>,
    /// When the test ends.
    pub stop: StopRule,
    /// θ before any answer; `None` takes the estimator's (the prior mean for EAP
    /// and MAP, 0 for MLE and WLE).
    pub start: Option<f64>,
    /// Blueprint and enemy groups every test must respect (see [`Cat::step`]).
    pub constraints: Option<Constraints>,
}

/// Result of one step of an adaptive test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Ability estimate from the answers so far.
    pub estimate: Estimate,
    /// The item to administer next; `None` when the test stops.
    pub next: Option<usize>,
    /// Why the test stops, or `None` while it goes on.
    pub stop: Option<StopReason>,
}

/// The RNG for the step that follows `administered` items: ChaCha8 keyed by the
/// test's seed (bytes 0..8, little-endian) and the step number (bytes 8..16), so a
/// step can be recomputed from the stored answers alone, with no RNG state saved.
fn step_rng(seed: u64, administered: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(administered as u64).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

impl Cat {
    /// Builds an engine from an estimator, a selector and a stop rule, starting where
    /// the estimator does.
    pub fn new(estimator: Box<dyn Estimator>, selector: Box<dyn Selector>, stop: StopRule) -> Cat {
        Cat {
            estimator,
            selector,
            stop,
            start: None,
            constraints: None,
        }
    }

    /// Builds an engine that starts at `start` (θ and the prior of `estimator`).
    pub fn from_start(
        start: Start,
        estimator: EstimatorKind,
        selector: Box<dyn Selector>,
        stop: StopRule,
    ) -> Cat {
        Cat {
            estimator: estimator.build(start.prior),
            selector,
            stop,
            start: Some(start.theta),
            constraints: None,
        }
    }

    /// The same engine, with every test held to `constraints` (check them first
    /// with [`Constraints::check`]).
    pub fn with_constraints(mut self, constraints: Constraints) -> Cat {
        self.constraints = Some(constraints);
        self
    }

    /// Estimates θ from the answers so far, then either stops or picks the next item.
    ///
    /// `items` are the administered items in order and `answers[i]` the answer to
    /// `items[i]`; the stop rule counts `min(items.len(), answers.len())` answers,
    /// and no item in `items` is selected again. Randomness comes from a ChaCha8Rng
    /// seeded from (`seed`, `items.len()`), so the same test replays identically and
    /// any step can be recomputed. If the stop rule does not fire but no item is
    /// left, `stop = Some(BankExhausted)` and `next = None`. Before any answer the
    /// estimate's θ is `start` when set.
    ///
    /// With [`constraints`](Cat::constraints), the selector only sees items that
    /// share no enemy group with an administered item and carry no concept whose
    /// maximum is reached; and when the items left before `max_items`
    /// (`max_items − items.len()`) are no more than the items the unmet minimums
    /// still need (the sum of their shortfalls), only items tagged with an unmet
    /// concept. While a minimum is unmet, the SE target and the classifications do
    /// not end the test: it goes on with items tagged with an unmet concept, and
    /// stops for that first reason only once no such item is eligible. `max_items`
    /// always ends it; running out of eligible items ends it as `BankExhausted`.
    pub fn step(&self, bank: &ItemBank, items: &[usize], answers: &[u8], seed: u64) -> Step {
        let estimate = self.estimator.estimate(bank, items, answers);
        self.step_from(bank, items, answers, seed, estimate)
    }

    /// [`Cat::step`] with the estimator's estimate on `items` and `answers`
    /// already at hand (a simulation's running [`crate::estimate::Posterior`]).
    pub fn step_from(
        &self,
        bank: &ItemBank,
        items: &[usize],
        answers: &[u8],
        seed: u64,
        mut estimate: Estimate,
    ) -> Step {
        let answered = items.len().min(answers.len());
        if answered == 0
            && let Some(theta) = self.start
        {
            estimate.theta = theta;
        }
        let stop = self.stop.check(answered, estimate.theta, estimate.se);
        let Some(constraints) = &self.constraints else {
            if let Some(reason) = stop {
                return Step::stopped(estimate, reason);
            }
            let mut rng = step_rng(seed, items.len());
            let next = self.selector.select(bank, estimate.theta, items, &mut rng);
            return Step::picked(estimate, next);
        };
        constraints.with_tally(bank, items, |tally| {
            // An unmet minimum holds the test open against every stop but max_items.
            let held = match stop {
                Some(StopReason::MaxItems) => return Step::stopped(estimate, StopReason::MaxItems),
                Some(reason) if tally.unmet.is_empty() => return Step::stopped(estimate, reason),
                Some(reason) => Some(reason),
                None => None,
            };
            let left = self.stop.max_items.saturating_sub(items.len());
            let forced = !tally.unmet.is_empty() && (held.is_some() || left <= tally.needed);
            let mut rng = step_rng(seed, items.len());
            let required = forced.then_some(tally.unmet);
            let next = Candidates::with_tags(bank.len(), items, tally.full, required, |c| {
                constraints.exclude_enemies(items, c);
                let pick = self.selector.choose(bank, estimate.theta, c, &mut rng);
                // A forced pick that finds nothing: held open for a minimum no
                // eligible item can serve, stop after all; otherwise pick freely.
                if pick.is_some() || !forced || held.is_some() {
                    return pick;
                }
                c.require_any(None);
                self.selector.choose(bank, estimate.theta, c, &mut rng)
            });
            match (next, held) {
                (None, Some(reason)) => Step::stopped(estimate, reason),
                (next, _) => Step::picked(estimate, next),
            }
        })
    }
}

impl Step {
    fn stopped(estimate: Estimate, reason: StopReason) -> Step {
        Step {
            estimate,
            next: None,
            stop: Some(reason),
        }
    }

    /// `next`, or the end of the bank when `None`.
    fn picked(estimate: Estimate, next: Option<usize>) -> Step {
        Step {
            estimate,
            next,
            stop: next.is_none().then_some(StopReason::BankExhausted),
        }
    }
}

/// Per-concept proficiency.
///
/// For each concept id that appears on an administered item (in `items`, paired
/// with `answers` as in [`Estimator::estimate`]; out-of-range items are ignored),
/// returns the estimate from the answers to the items tagged with it (using the
/// same estimator) and their count `n`. An item tagged twice with one concept
/// counts once. Sorted by concept id.
pub fn concept_estimates(
    estimator: &dyn Estimator,
    bank: &ItemBank,
    items: &[usize],
    answers: &[u8],
) -> Vec<(u16, Estimate, usize)> {
    // (concept, position in the test) pairs, sorted: each concept's answers then
    // form one run, in test order.
    let mut tagged: Vec<(u16, usize)> = items
        .iter()
        .zip(answers)
        .enumerate()
        .filter(|(_, (i, _))| **i < bank.len())
        .flat_map(|(pos, (&i, _))| bank.concepts(i).iter().map(move |&c| (c, pos)))
        .collect();
    tagged.sort_unstable();
    tagged.dedup();
    let mut out = Vec::new();
    let mut sub_items = Vec::new();
    let mut sub_answers = Vec::new();
    for run in tagged.chunk_by(|x, y| x.0 == y.0) {
        sub_items.clear();
        sub_answers.clear();
        for &(_, pos) in run {
            sub_items.push(items[pos]);
            sub_answers.push(answers[pos]);
        }
        let estimate = estimator.estimate(bank, &sub_items, &sub_answers);
        out.push((run[0].0, estimate, run.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::estimate::{Eap, Map, Mle};
    use super::super::model::ItemParams;
    use super::super::select::{MaxInfo, Randomesque};
    use super::*;

    fn bank(n: usize) -> ItemBank {
        let items = (0..n)
            .map(|i| {
                ItemParams::new(
                    0.8 + (i % 5) as f64 * 0.2,
                    -3.0 + 6.0 * i as f64 / n as f64,
                    0.0,
                    1.0,
                )
                .unwrap()
            })
            .collect();
        let concepts = (0..n).map(|i| vec![(i % 3) as u16]).collect();
        ItemBank::new(items, concepts)
    }

    /// Simulated examinee answering deterministically from a hash-like rule.
    fn simulate(
        cat: &Cat,
        bank: &ItemBank,
        seed: u64,
        true_theta: f64,
    ) -> (Vec<usize>, Vec<u8>, Step) {
        let (mut items, mut answers) = (Vec::new(), Vec::new());
        loop {
            let step = cat.step(bank, &items, &answers, seed);
            let Some(next) = step.next else {
                return (items, answers, step);
            };
            assert!(!items.contains(&next));
            assert!(step.stop.is_none());
            items.push(next);
            answers.push(u8::from(
                bank.probability(next, true_theta) > 0.5 - 0.3 * ((items.len() % 3) as f64 - 1.0),
            ));
        }
    }

    #[test]
    fn same_seed_replays_the_same_test() {
        let bank = bank(200);
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(Randomesque { k: 5 }),
            StopRule {
                max_items: 20,
                ..StopRule::default()
            },
        );
        let a = simulate(&cat, &bank, 42, 0.8);
        let b = simulate(&cat, &bank, 42, 0.8);
        let c = simulate(&cat, &bank, 43, 0.8);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        assert_eq!(a.0.len(), 20);
        assert_eq!(a.2.stop, Some(StopReason::MaxItems));
        // A step can be recomputed from the stored answers alone.
        let again = cat.step(&bank, &a.0[..7], &a.1[..7], 42);
        assert_eq!(again.next, Some(a.0[7]));
    }

    #[test]
    fn se_target_stops_early_but_not_before_min_items() {
        let bank = bank(300);
        let rule = StopRule {
            max_items: 100,
            min_items: 8,
            se_target: Some(0.45),
            classify: None,
            levels: None,
        };
        let cat = Cat::new(Box::new(Map::default()), Box::new(MaxInfo), rule);
        let (items, _, step) = simulate(&cat, &bank, 1, 0.0);
        assert_eq!(step.stop, Some(StopReason::SeTarget));
        assert!(items.len() >= 8 && items.len() < 100, "{}", items.len());
        assert!(step.estimate.se <= 0.45);
        let strict = Cat::new(
            Box::new(Map::default()),
            Box::new(MaxInfo),
            StopRule {
                min_items: 40,
                ..rule
            },
        );
        let (items, _, _) = simulate(&strict, &bank, 1, 0.0);
        assert!(items.len() >= 40);
    }

    #[test]
    fn exhausted_bank() {
        let bank = bank(4);
        let cat = Cat::new(
            Box::new(Mle::default()),
            Box::new(MaxInfo),
            StopRule {
                max_items: 10,
                ..StopRule::default()
            },
        );
        let (items, _, step) = simulate(&cat, &bank, 9, 0.0);
        assert_eq!(items.len(), 4);
        assert_eq!(
            step,
            Step {
                next: None,
                stop: Some(StopReason::BankExhausted),
                ..step
            }
        );
        let empty = ItemBank::default();
        let step = cat.step(&empty, &[], &[], 0);
        assert_eq!(step.stop, Some(StopReason::BankExhausted));
        assert_eq!(
            step.estimate,
            Estimate {
                theta: 0.0,
                se: Mle::SE_CAP
            }
        );
    }

    #[test]
    fn first_step_uses_the_prior() {
        let bank = bank(50);
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(MaxInfo),
            StopRule {
                max_items: 10,
                ..StopRule::default()
            },
        );
        let step = cat.step(&bank, &[], &[], 0);
        assert_eq!(
            step.estimate,
            Estimate {
                theta: 0.0,
                se: 1.0
            }
        );
        assert_eq!(
            step.next,
            MaxInfo.select(&bank, 0.0, &[], &mut step_rng(0, 0))
        );
    }

    #[test]
    fn concept_estimates_group_by_concept() {
        let p = |b: f64| ItemParams::new(1.0, b, 0.0, 1.0).unwrap();
        let bank = ItemBank::new(
            vec![p(-1.0), p(0.0), p(1.0), p(0.5), p(2.0)],
            vec![vec![5, 2], vec![2], vec![5, 5], vec![], vec![9]],
        );
        let eap = Eap::default();
        let items = [0, 1, 2, 3, 77];
        let answers = [1, 0, 1, 1, 1];
        let got = concept_estimates(&eap, &bank, &items, &answers);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (2, eap.estimate(&bank, &[0, 1], &[1, 0]), 2));
        assert_eq!(got[1], (5, eap.estimate(&bank, &[0, 2], &[1, 1]), 2));
        assert!(concept_estimates(&eap, &bank, &[], &[]).is_empty());
        // Item 4's concept appears once it is administered.
        let got = concept_estimates(&eap, &bank, &[4], &[0]);
        assert_eq!(got, vec![(9, eap.estimate(&bank, &[4], &[0]), 1)]);
    }
}
