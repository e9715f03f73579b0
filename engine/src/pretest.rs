//! Pretest items in a live test: which of a pool's uncalibrated items a test
//! carries, and at which positions, as a pure function of the test's seed.
//!
//! A pretest item is answered like any other but never estimated on: the
//! engine ([`crate::Cat`]) never sees it, so θ, SE, the stop rule, the
//! blueprint and exposure are those of the operational items alone. What the
//! plan decides must come out the same on every replay of the test (a rebuild
//! from the stored answers), in every release: so its randomness is a ChaCha8
//! stream of its own and its sampling is written here, not borrowed from a
//! library whose algorithm may change between versions.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where a test's pretest items go: each one's 1-based position among the
/// questions served (operational and pretest alike) and its index among the
/// pool version's pretest items.
///
/// With `k` pretest items and at most `max_items` operational ones, a test
/// serves at most `max_items + k` questions; the pretest positions are `k`
/// distinct positions of `2 ..= max_items + k − 1`, never the first question
/// (the test opens with an operational item) nor the last possible one (so a
/// test that runs to `max_items` serves them all, before its last operational
/// item). A test that stops earlier never reaches the positions after its
/// end, and serves only the pretest items placed before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PretestPlan {
    /// (position, pretest item), by position.
    slots: Vec<(u32, u32)>,
}

/// The plan's RNG: ChaCha8 keyed by the seed (bytes 0..8, little-endian) and
/// the tag `pretest` (bytes 16..23). The engine's step RNGs leave bytes 16..32
/// zero, so this stream is none of theirs.
fn plan_rng(seed: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[16..23].copy_from_slice(b"pretest");
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n` ≥ 1): a 64-bit draw, rejected when it
/// falls in the incomplete last block of `n` values, then reduced mod `n`.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let incomplete = (u64::MAX % n + 1) % n;
    loop {
        let x = rng.next_u64();
        if x <= u64::MAX - incomplete {
            return x % n;
        }
    }
}

/// `k` distinct values of `0..n` in a uniformly random order (`k` ≤ `n`): a
/// partial Fisher–Yates shuffle of the virtual array `0, 1, …, n − 1`, of which
/// only the entries it moved are kept (so a pool of thousands of items costs
/// no more than one of ten).
fn sample(rng: &mut ChaCha8Rng, n: u32, k: u32) -> Vec<u32> {
    // (index, value) of each entry moved; the latest one for an index wins.
    let mut moved: Vec<(u32, u32)> = Vec::with_capacity(k as usize);
    let value = |moved: &[(u32, u32)], i: u32| {
        moved
            .iter()
            .rev()
            .find(|&&(at, _)| at == i)
            .map_or(i, |&(_, v)| v)
    };
    let mut out = Vec::with_capacity(k as usize);
    for i in 0..k {
        let j = i + below(rng, u64::from(n - i)) as u32;
        let (vi, vj) = (value(&moved, i), value(&moved, j));
        // Swap a[i] and a[j]; a[i] is final and never read again.
        moved.push((j, vi));
        out.push(vj);
    }
    out
}

impl PretestPlan {
    /// The plan of the test seeded `seed` that asks for `wanted` pretest items
    /// out of `available` in its pool version, with at most `max_items`
    /// operational items: `k = min(wanted, available)` distinct items, each
    /// set of `k` equally likely, put at `k` distinct positions of
    /// `2 ..= max_items + k − 1`, each set equally likely, in a random order.
    /// No pretest item when `max_items` < 2 (no position fits the rule).
    pub fn new(seed: u64, wanted: u32, max_items: u32, available: usize) -> Self {
        let available = u32::try_from(available).unwrap_or(u32::MAX);
        let k = wanted.min(available);
        if k == 0 || max_items < 2 {
            return Self::default();
        }
        let mut rng = plan_rng(seed);
        let items = sample(&mut rng, available, k);
        // Positions 2 ..= max_items + k − 1: max_items + k − 2 of them, at least k.
        let positions = sample(&mut rng, max_items + k - 2, k);
        let mut slots: Vec<(u32, u32)> = positions.into_iter().map(|p| p + 2).zip(items).collect();
        slots.sort_unstable();
        Self { slots }
    }

    /// The pretest item served at `position` (1-based), if that is a pretest position.
    pub fn item_at(&self, position: u32) -> Option<usize> {
        self.slots
            .iter()
            .find(|&&(p, _)| p == position)
            .map(|&(_, item)| item as usize)
    }

    /// The position of pretest item `item`, if this test carries it.
    pub fn position_of(&self, item: usize) -> Option<u32> {
        self.slots
            .iter()
            .find(|&&(_, i)| i as usize == item)
            .map(|&(p, _)| p)
    }

    /// (position, pretest item) pairs, by position.
    pub fn slots(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.slots.iter().map(|&(p, i)| (p, i as usize))
    }

    /// How many pretest items the test carries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the test carries none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let a = PretestPlan::new(42, 3, 20, 50);
        assert_eq!(a, PretestPlan::new(42, 3, 20, 50));
        let differing = (0..20)
            .filter(|&s| PretestPlan::new(s, 3, 20, 50) != a)
            .count();
        assert!(differing >= 19, "{differing}");
    }

    /// Pinned: a change here changes where running tests serve their pretest
    /// items, and a rebuild from PostgreSQL would disagree with what was served.
    #[test]
    fn the_plan_of_a_seed_never_changes() {
        let plan = PretestPlan::new(0x0123_4567_89ab_cdef, 3, 12, 40);
        let slots: Vec<(u32, usize)> = plan.slots().collect();
        assert_eq!(slots, PINNED);
    }

    const PINNED: [(u32, usize); 3] = [(3, 25), (8, 34), (14, 19)];

    #[test]
    fn positions_and_items_keep_to_the_rule() {
        for seed in 0..2_000 {
            let (max_items, wanted, available) = (
                2 + (seed % 30) as u32,
                1 + (seed % 10) as u32,
                (seed % 7) as usize,
            );
            let plan = PretestPlan::new(seed, wanted, max_items, available);
            let k = wanted.min(available as u32) as usize;
            assert_eq!(plan.len(), k, "seed {seed}");
            let mut positions: Vec<u32> = plan.slots().map(|(p, _)| p).collect();
            let mut items: Vec<usize> = plan.slots().map(|(_, i)| i).collect();
            assert!(positions.is_sorted());
            positions.dedup();
            items.sort_unstable();
            items.dedup();
            assert_eq!((positions.len(), items.len()), (k, k), "seed {seed}");
            let last = max_items + k as u32 - 1;
            assert!(positions.iter().all(|p| (2..=last).contains(p)), "{plan:?}");
            assert!(items.iter().all(|&i| i < available), "{plan:?}");
            for (p, i) in plan.slots() {
                assert_eq!((plan.item_at(p), plan.position_of(i)), (Some(i), Some(p)));
            }
            assert_eq!(plan.item_at(1), None);
        }
    }

    #[test]
    fn no_pretest_item_without_room_or_supply() {
        assert!(PretestPlan::new(7, 0, 20, 10).is_empty());
        assert!(PretestPlan::new(7, 3, 20, 0).is_empty());
        assert!(PretestPlan::new(7, 3, 1, 10).is_empty());
        // Two operational items and two pretest ones: positions 2 and 3 of 4.
        let plan = PretestPlan::new(7, 2, 2, 2);
        assert_eq!(plan.slots().map(|(p, _)| p).collect::<Vec<_>>(), [2, 3]);
    }

    /// Every item and every position is equally likely (χ² against uniform,
    /// far below the 0.001 critical values).
    #[test]
    fn items_and_positions_are_uniform() {
        let (runs, available, max_items, k) = (40_000u64, 12usize, 8u32, 3u32);
        let mut items = vec![0u32; available];
        let slots = (max_items + k - 2) as usize;
        let mut positions = vec![0u32; slots];
        for seed in 0..runs {
            for (p, i) in PretestPlan::new(seed, k, max_items, available).slots() {
                items[i] += 1;
                positions[(p - 2) as usize] += 1;
            }
        }
        let chi2 = |counts: &[u32]| {
            let expected = (runs * u64::from(k)) as f64 / counts.len() as f64;
            counts
                .iter()
                .map(|&c| (f64::from(c) - expected).powi(2) / expected)
                .sum::<f64>()
        };
        // χ²(0.999) with 11 and 8 degrees of freedom: 31.3 and 26.1.
        assert!(chi2(&items) < 31.3, "{items:?}");
        assert!(chi2(&positions) < 26.1, "{positions:?}");
    }

    #[test]
    fn draws_below_n_are_unbiased_at_the_edges() {
        let mut rng = plan_rng(1);
        assert!((0..1_000).all(|_| below(&mut rng, 1) == 0));
        let big = u64::MAX / 2 + 2;
        assert!((0..1_000).all(|_| below(&mut rng, big) < big));
        let mut seen = [false; 5];
        for _ in 0..200 {
            seen[below(&mut rng, 5) as usize] = true;
        }
        assert_eq!(seen, [true; 5]);
    }
}
