//! Content constraints of an adaptive test: a blueprint (per concept, a minimum and
//! a maximum number of items) and enemy groups (items that never appear together
//! in one test, e.g. because one gives away the answer to another).
//!
//! The constraints do not choose items themselves: before each selection
//! [`Cat::step`](super::Cat::step) narrows the [`Candidates`] the selector sees —
//! enemies of administered items are excluded, concepts at their maximum are
//! forbidden, and, when the items left are just enough to meet the unmet minimums,
//! only items tagged with an unmet concept remain — so they compose with any
//! selector (maximum information, randomesque, content balancing, Sympson–Hetter).
//! This is the "shadow-free" constrained CAT of Kingsbury & Zara (1991) and
//! Stocking & Swanson's (1993) hard constraints, without a solver.

use super::bank::ItemBank;
use super::select::Candidates;

/// Blueprint entries up to this many keep their per-step tallies on the stack.
const STACK_CONCEPTS: usize = 64;

/// A blueprint and enemy groups; see the [module](self) documentation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Constraints {
    /// (concept id, min items, max items), as given.
    blueprint: Vec<(u16, u32, u32)>,
    /// Enemy groups, as given (item indexes).
    enemies: Vec<Vec<usize>>,
    /// (item, group) for every member of every group, sorted and deduplicated:
    /// an item's groups are one run, found by binary search.
    memberships: Vec<(usize, u32)>,
}

/// The blueprint after the items given so far.
pub(crate) struct Tally<'s> {
    /// Concepts whose maximum is reached.
    pub(crate) full: &'s [u16],
    /// Concepts whose minimum is not yet met.
    pub(crate) unmet: &'s [u16],
    /// Items still needed to meet every minimum, if each counted toward one
    /// concept (Σ of the shortfalls: an upper bound when items carry several tags).
    pub(crate) needed: usize,
}

impl Constraints {
    /// A blueprint of (concept id as in [`ItemBank::concepts`], min items, max
    /// items) and enemy groups of item indexes. Nothing is validated here; see
    /// [`Constraints::check`]. An item tagged twice with one concept counts once.
    pub fn new(blueprint: &[(u16, u32, u32)], enemies: &[Vec<usize>]) -> Constraints {
        let mut memberships: Vec<(usize, u32)> = enemies
            .iter()
            .enumerate()
            .flat_map(|(g, members)| members.iter().map(move |&i| (i, g as u32)))
            .collect();
        memberships.sort_unstable();
        memberships.dedup();
        Constraints {
            blueprint: blueprint.to_vec(),
            enemies: enemies.to_vec(),
            memberships,
        }
    }

    /// The blueprint, as given.
    pub fn blueprint(&self) -> &[(u16, u32, u32)] {
        &self.blueprint
    }

    /// The enemy groups, as given.
    pub fn enemies(&self) -> &[Vec<usize>] {
        &self.enemies
    }

    /// The enemy groups item `i` belongs to.
    fn groups_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let start = self.memberships.partition_point(|&(j, _)| j < i);
        self.memberships[start..]
            .iter()
            .take_while(move |&&(j, _)| j == i)
            .map(|&(_, g)| g as usize)
    }

    /// Whether a test of `min_items` to `max_items` items on `bank` can meet these
    /// constraints; the error says which concept or group is at fault, in words
    /// fit for a user.
    ///
    /// Checked: enemy groups name items of the bank; no concept is listed twice;
    /// each concept's min ≤ max; the bank has at least min items tagged with each
    /// concept, an enemy group counting for one item at most; the minimums add up
    /// to no more than `max_items`; and the maximums and enemy groups leave room
    /// for `min_items` items. These are necessary conditions: a design that fails
    /// them is infeasible, one that passes them is feasible in the usual case of
    /// disjoint enemy groups and single-tagged items, but not guaranteed to be.
    pub fn check(&self, bank: &ItemBank, min_items: usize, max_items: usize) -> Result<(), String> {
        let n = bank.len();
        for (g, members) in self.enemies.iter().enumerate() {
            if let Some(&i) = members.iter().find(|&&i| i >= n) {
                return Err(format!(
                    "enemies: group {g} lists item {i} but the pool has {n} items (0 to {})",
                    n.saturating_sub(1)
                ));
            }
        }
        for (k, &(c, min, max)) in self.blueprint.iter().enumerate() {
            if self.blueprint[..k].iter().any(|&(d, _, _)| d == c) {
                return Err(format!("blueprint: concept {c} is listed twice"));
            }
            if min > max {
                return Err(format!(
                    "blueprint: concept {c} has a minimum of {min} items above its maximum of {max}"
                ));
            }
        }
        // Items in one class are mutual enemies: the class of an item is its first
        // enemy group, or the item alone. A test takes at most one item per class.
        let class = |i: usize| self.groups_of(i).next().map_or(i, |g| n + g);
        let classes = |tagged: &mut dyn Iterator<Item = usize>| {
            let mut ids: Vec<usize> = tagged.map(class).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        for &(c, min, _) in &self.blueprint {
            let tagged = (0..n).filter(|&i| bank.concepts(i).contains(&c));
            let count = tagged.clone().count();
            if count < min as usize {
                return Err(format!(
                    "blueprint: concept {c} needs at least {min} items but the pool has {count} tagged with it"
                ));
            }
            let apart = classes(&mut tagged.clone());
            if apart < min as usize {
                return Err(format!(
                    "blueprint: concept {c} needs at least {min} items but only {apart} of the {count} tagged with it can be in one test (an enemy group gives one item at most)"
                ));
            }
        }
        let mins: u64 = self
            .blueprint
            .iter()
            .map(|&(_, min, _)| u64::from(min))
            .sum();
        if mins > max_items as u64 {
            return Err(format!(
                "blueprint: the concepts' minimums add up to {mins} items but a test has at most {max_items}"
            ));
        }
        // Room for min_items: one item per class, and no more blueprint-tagged
        // items than the maximums add up to.
        let in_blueprint = |i: usize| {
            bank.concepts(i)
                .iter()
                .any(|t| self.blueprint.iter().any(|&(c, _, _)| c == *t))
        };
        let maxes: u64 = self
            .blueprint
            .iter()
            .map(|&(_, _, max)| u64::from(max))
            .sum();
        let tagged = classes(&mut (0..n).filter(|&i| in_blueprint(i))) as u64;
        let untagged = classes(&mut (0..n).filter(|&i| !in_blueprint(i))) as u64;
        let room = untagged + tagged.min(maxes);
        if room < min_items as u64 && room < n as u64 {
            return Err(format!(
                "blueprint: the concepts' maximums and the enemy groups leave room for {room} items but a test needs at least {min_items}"
            ));
        }
        Ok(())
    }

    /// Tallies the blueprint over the administered `items` (out-of-range ones
    /// ignored) into scratch space, then runs `f` on the tally.
    pub(crate) fn with_tally<R>(
        &self,
        bank: &ItemBank,
        items: &[usize],
        f: impl FnOnce(&Tally<'_>) -> R,
    ) -> R {
        let k = self.blueprint.len();
        let run = |counts: &mut [u32], full: &mut [u16], unmet: &mut [u16]| {
            for &i in items.iter().filter(|&&i| i < bank.len()) {
                let tags = bank.concepts(i);
                for (count, &(c, _, _)) in counts.iter_mut().zip(&self.blueprint) {
                    if tags.contains(&c) {
                        *count += 1;
                    }
                }
            }
            let (mut nf, mut nu, mut needed) = (0, 0, 0usize);
            for (&count, &(c, min, max)) in counts.iter().zip(&self.blueprint) {
                if count >= max {
                    full[nf] = c;
                    nf += 1;
                }
                if count < min {
                    unmet[nu] = c;
                    nu += 1;
                    needed += (min - count) as usize;
                }
            }
            f(&Tally {
                full: &full[..nf],
                unmet: &unmet[..nu],
                needed,
            })
        };
        if k <= STACK_CONCEPTS {
            let (mut counts, mut full, mut unmet) = (
                [0u32; STACK_CONCEPTS],
                [0u16; STACK_CONCEPTS],
                [0u16; STACK_CONCEPTS],
            );
            run(&mut counts[..k], &mut full[..k], &mut unmet[..k])
        } else {
            run(&mut vec![0; k], &mut vec![0; k], &mut vec![0; k])
        }
    }

    /// Sets aside every member of an enemy group that an administered item belongs to.
    pub(crate) fn exclude_enemies(&self, items: &[usize], candidates: &mut Candidates<'_>) {
        if self.memberships.is_empty() {
            return;
        }
        for &i in items {
            for g in self.groups_of(i) {
                for &j in &self.enemies[g] {
                    candidates.exclude(j);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::estimate::Eap;
    use super::super::model::ItemParams;
    use super::super::select::{ContentBalanced, MaxInfo, Randomesque, Selector, SympsonHetter};
    use super::super::sim::{SimConfig, generate_bank, simulate};
    use super::super::stop::{StopReason, StopRule};
    use super::super::{Cat, Levels};
    use super::*;

    /// `n` items, b spread over [−2.5, 2.5], concept `i % 4`, item 5k also tagged 9.
    fn bank(n: usize) -> ItemBank {
        let items = (0..n)
            .map(|i| ItemParams::new(1.2, -2.5 + 5.0 * i as f64 / n as f64, 0.1, 1.0).unwrap())
            .collect();
        let tags = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    vec![(i % 4) as u16, 9]
                } else {
                    vec![(i % 4) as u16]
                }
            })
            .collect();
        ItemBank::new(items, tags)
    }

    fn err(c: &Constraints, bank: &ItemBank, min: usize, max: usize) -> String {
        c.check(bank, min, max).unwrap_err()
    }

    #[test]
    fn feasibility_errors_name_the_problem() {
        let bank = bank(40); // 10 items per concept 0..3; 8 tagged 9
        let ok = Constraints::new(&[(0, 2, 5), (9, 1, 3)], &[vec![0, 4], vec![1, 2]]);
        assert_eq!(ok.check(&bank, 10, 20), Ok(()));
        assert_eq!(
            err(&Constraints::new(&[(3, 5, 2)], &[]), &bank, 0, 20),
            "blueprint: concept 3 has a minimum of 5 items above its maximum of 2"
        );
        assert_eq!(
            err(&Constraints::new(&[(7, 5, 6)], &[]), &bank, 0, 20),
            "blueprint: concept 7 needs at least 5 items but the pool has 0 tagged with it"
        );
        assert_eq!(
            err(&Constraints::new(&[(9, 9, 9)], &[]), &bank, 0, 20),
            "blueprint: concept 9 needs at least 9 items but the pool has 8 tagged with it"
        );
        // Concept 1 has items 1, 5, …, 37; three groups take 6 of them, leaving 7 apart.
        let enemies = [vec![1, 5], vec![9, 13, 2], vec![17, 21]];
        assert_eq!(
            Constraints::new(&[(1, 7, 8)], &enemies).check(&bank, 0, 20),
            Ok(())
        );
        assert_eq!(
            err(&Constraints::new(&[(1, 8, 8)], &enemies), &bank, 0, 20),
            "blueprint: concept 1 needs at least 8 items but only 7 of the 10 tagged with it can be in one test (an enemy group gives one item at most)"
        );
        assert_eq!(
            err(
                &Constraints::new(&[(0, 4, 5), (1, 4, 5), (2, 3, 5)], &[]),
                &bank,
                0,
                10
            ),
            "blueprint: the concepts' minimums add up to 11 items but a test has at most 10"
        );
        assert_eq!(
            err(&Constraints::new(&[], &[vec![3, 40]]), &bank, 0, 10),
            "enemies: group 0 lists item 40 but the pool has 40 items (0 to 39)"
        );
        assert_eq!(
            err(
                &Constraints::new(&[(2, 1, 2), (2, 0, 3)], &[]),
                &bank,
                0,
                10
            ),
            "blueprint: concept 2 is listed twice"
        );
        // Maximums leave too little room: concepts 0..3 cover the whole bank.
        let capped = Constraints::new(&[(0, 0, 2), (1, 0, 2), (2, 0, 2), (3, 0, 2)], &[]);
        assert_eq!(
            err(&capped, &bank, 9, 20),
            "blueprint: the concepts' maximums and the enemy groups leave room for 8 items but a test needs at least 9"
        );
        assert_eq!(capped.check(&bank, 8, 20), Ok(()));
        // A bank smaller than min_items is not a constraints problem.
        assert_eq!(Constraints::default().check(&bank, 50, 60), Ok(()));
    }

    /// Runs one test to the end, answering from `theta` by a fixed rule.
    fn run(cat: &Cat, bank: &ItemBank, theta: f64, seed: u64) -> (Vec<usize>, StopReason) {
        let (mut items, mut answers) = (Vec::new(), Vec::new());
        loop {
            let step = cat.step(bank, &items, &answers, seed);
            match step.next {
                Some(i) => {
                    assert!(!items.contains(&i));
                    answers.push(u8::from(bank.probability(i, theta) > 0.5));
                    items.push(i);
                }
                None => return (items, step.stop.unwrap()),
            }
        }
    }

    fn assert_meets(c: &Constraints, bank: &ItemBank, items: &[usize]) {
        for &(concept, min, max) in c.blueprint() {
            let n = items
                .iter()
                .filter(|&&i| bank.concepts(i).contains(&concept))
                .count() as u32;
            assert!(
                n >= min && n <= max,
                "concept {concept}: {n} not in {min}..={max}: {items:?}"
            );
        }
        for group in c.enemies() {
            let n = items.iter().filter(|i| group.contains(i)).count();
            assert!(n <= 1, "enemy group {group:?}: {items:?}");
        }
    }

    #[test]
    fn simulated_tests_meet_the_blueprint_and_avoid_enemies() {
        // A 3PL bank from the generator, re-tagged: concept i % 5, every 7th item
        // also tagged 9; enemy groups of three consecutive items among the first 300.
        let raw = generate_bank(600, 21);
        let tags = (0..600)
            .map(|i| {
                if i % 7 == 0 {
                    vec![(i % 5) as u16, 9]
                } else {
                    vec![(i % 5) as u16]
                }
            })
            .collect();
        let bank = ItemBank::new((0..600).map(|i| raw.item(i)).collect(), tags);
        let enemies: Vec<Vec<usize>> = (0..100)
            .map(|g| vec![3 * g, 3 * g + 1, 3 * g + 2])
            .collect();
        let blueprint = [
            (0, 3, 6),
            (1, 2, 4),
            (2, 4, 8),
            (3, 0, 2),
            (4, 1, 20),
            (9, 2, 3),
        ];
        let constraints = Constraints::new(&blueprint, &enemies);
        let stop = StopRule {
            max_items: 20,
            min_items: 5,
            se_target: Some(0.4),
            ..StopRule::default()
        };
        constraints
            .check(&bank, stop.min_items, stop.max_items)
            .unwrap();
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(Randomesque { k: 3 }),
            stop,
        )
        .with_constraints(constraints.clone());
        let sim = simulate(
            &cat,
            &bank,
            &SimConfig {
                examinees: 500,
                seed: 77,
                ..SimConfig::default()
            },
            &|_| {},
        );
        let mut short = 0;
        for e in &sim.examinees {
            assert_meets(&constraints, &bank, &e.items);
            assert!(e.items.len() <= 20);
            assert!(
                matches!(e.stop, StopReason::MaxItems | StopReason::SeTarget),
                "{:?}",
                e.stop
            );
            short += usize::from(e.items.len() < 20);
        }
        // The SE target still ends some tests early, once the minimums are met: they
        // add up to 12 items, of which the two of concept 9 may also count for another.
        assert!(short > 0);
        assert!(sim.summary().min_length >= 10, "{:?}", sim.summary());
        // The same with content balancing and Sympson–Hetter underneath, and levels.
        let balanced = SympsonHetter::new(Box::new(
            ContentBalanced::new(vec![(4, 0.5), (3, 0.5)], Box::new(MaxInfo)).unwrap(),
        ));
        let exposed = bank.clone().with_exposure(
            (0..600)
                .map(|i| if i % 2 == 0 { 0.5 } else { 1.0 })
                .collect(),
        );
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(balanced),
            StopRule {
                levels: Some(Levels::new(&[-0.5, 0.5], 0.9).unwrap()),
                se_target: None,
                ..stop
            },
        )
        .with_constraints(constraints.clone());
        for (k, theta) in [-2.0, -0.7, 0.0, 0.4, 1.5, 3.0].into_iter().enumerate() {
            let (items, reason) = run(&cat, &exposed, theta, k as u64);
            assert_meets(&constraints, &bank, &items);
            assert!(
                matches!(reason, StopReason::MaxItems | StopReason::Level(_)),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn minimums_hold_the_test_open_and_are_forced_at_the_end() {
        let bank = bank(80);
        // Concept 9 (16 items, b spread) must get 4 items: the SE target alone would
        // stop before that, and nothing else would pick them at θ = 0 in time.
        let constraints = Constraints::new(&[(9, 4, 4), (2, 0, 1)], &[]);
        let stop = StopRule {
            max_items: 8,
            min_items: 1,
            se_target: Some(0.9),
            ..StopRule::default()
        };
        let plain = Cat::new(Box::new(Eap::default()), Box::new(MaxInfo), stop);
        let (items, reason) = run(&plain, &bank, 0.0, 1);
        assert_eq!(reason, StopReason::SeTarget);
        let tagged = |items: &[usize], c| {
            items
                .iter()
                .filter(|&&i| bank.concepts(i).contains(&c))
                .count()
        };
        assert!(tagged(&items, 9) < 4, "{items:?}");
        let cat = Cat::new(Box::new(Eap::default()), Box::new(MaxInfo), stop)
            .with_constraints(constraints.clone());
        let (items, reason) = run(&cat, &bank, 0.0, 1);
        assert_eq!(tagged(&items, 9), 4, "{items:?}");
        assert!(tagged(&items, 2) <= 1, "{items:?}");
        assert_eq!(reason, StopReason::SeTarget, "{items:?}");
        // With a long test and no early stop, the last items are forced.
        let long = Cat::new(
            Box::new(Eap::default()),
            Box::new(MaxInfo),
            StopRule {
                se_target: None,
                ..stop
            },
        )
        .with_constraints(constraints);
        let (items, reason) = run(&long, &bank, 0.0, 1);
        assert_eq!((items.len(), reason), (8, StopReason::MaxItems));
        assert_eq!(tagged(&items, 9), 4, "{items:?}");
    }

    #[test]
    fn unreachable_minimums_and_exhausted_pools_stop() {
        let bank = bank(12);
        // Concept 9 has items 0, 5, 10, all enemies: a minimum of 2 cannot be met.
        // The SE target stops the test once no item of the concept is left.
        let c = Constraints::new(&[(9, 2, 3)], &[vec![0, 5, 10]]);
        assert!(c.check(&bank, 0, 10).is_err());
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(MaxInfo),
            StopRule {
                max_items: 10,
                se_target: Some(5.0),
                ..StopRule::default()
            },
        )
        .with_constraints(c);
        let (items, reason) = run(&cat, &bank, 0.0, 3);
        assert_eq!(reason, StopReason::SeTarget);
        assert_eq!(
            items.len(),
            1,
            "one item of concept 9, then nothing eligible: {items:?}"
        );
        assert!([0, 5, 10].contains(&items[0]));
        // Every concept capped at 1 item: four items, then the pool is exhausted.
        let capped = Constraints::new(&[(0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 0, 1)], &[]);
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(MaxInfo),
            StopRule::default(),
        )
        .with_constraints(capped);
        let (items, reason) = run(&cat, &bank, 0.0, 3);
        assert_eq!((items.len(), reason), (4, StopReason::BankExhausted));
        let mut seen: Vec<usize> = items.iter().map(|i| i % 4).collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3]);
    }

    #[test]
    fn no_constraints_change_nothing() {
        let bank = bank(60);
        let stop = StopRule {
            max_items: 15,
            se_target: Some(0.5),
            ..StopRule::default()
        };
        let sel = || Box::new(Randomesque { k: 4 }) as Box<dyn Selector>;
        let plain = Cat::new(Box::new(Eap::default()), sel(), stop);
        let empty = Cat::new(Box::new(Eap::default()), sel(), stop)
            .with_constraints(Constraints::default());
        for seed in 0..20 {
            assert_eq!(run(&plain, &bank, 0.3, seed), run(&empty, &bank, 0.3, seed));
        }
    }
}
