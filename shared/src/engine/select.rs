//! Next-item selection: maximum Fisher information (Lord 1980) and the
//! randomesque exposure control of Kingsbury & Zara (1989).
//!
//! Both are a single linear scan over the bank's parameter columns; the bank is
//! never sorted and the usual call does not allocate.

use rand::{Rng, RngCore};

use super::bank::ItemBank;
use super::model;

/// Chooses the next item of an adaptive test.
pub trait Selector: Send + Sync {
    /// Index of the next item at ability `theta`, never one listed in `administered`
    /// (indexes there that are not in `bank` are ignored); `None` when every item
    /// has been administered. A non-finite `theta` is read as 0 (NaN) or clamped
    /// to ±1e6, so it cannot make a non-empty bank look exhausted.
    fn select(
        &self,
        bank: &ItemBank,
        theta: f64,
        administered: &[usize],
        rng: &mut dyn RngCore,
    ) -> Option<usize>;
}

/// Maximum Fisher information at θ; ties go to the lowest index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaxInfo;

/// Randomesque selection (Kingsbury & Zara 1989): uniformly among the `k` most
/// informative items left, to spread exposure. `k = 1` is [`MaxInfo`]; `k = 0` is
/// read as 1; a `k` larger than what is left draws among everything left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Randomesque {
    /// How many of the most informative items to draw from.
    pub k: usize,
}

/// Bank sizes up to this many items keep the "administered" bitset on the stack.
const STACK_WORDS: usize = 256; // 16,384 items, 2 KiB

/// Runs `f` with a bitset of `administered` over `n` items: one O(1) membership
/// test per item, where searching the slice would make a scan O(n·m).
#[inline]
fn with_taken<R>(n: usize, administered: &[usize], f: impl FnOnce(&[u64]) -> R) -> R {
    let words = n.div_ceil(64);
    let fill = |bits: &mut [u64]| {
        for &i in administered {
            if i < n {
                bits[i / 64] |= 1u64 << (i % 64);
            }
        }
    };
    if words <= STACK_WORDS {
        let mut bits = [0u64; STACK_WORDS];
        fill(&mut bits[..words]);
        f(&bits[..words])
    } else {
        let mut bits = vec![0u64; words];
        fill(&mut bits);
        f(&bits)
    }
}

#[inline]
fn is_taken(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

#[inline]
fn sane_theta(theta: f64) -> f64 {
    if theta.is_nan() {
        0.0
    } else {
        theta.clamp(-1e6, 1e6)
    }
}

/// What a scan feeds: candidates, and the information a candidate must strictly
/// exceed to matter (its logarithm; −inf while anything goes).
trait Sink {
    /// ln of the current bar.
    fn ln_bar(&self) -> f64;
    /// Offers item `i` with information `info`; true when the bar moved.
    fn offer(&mut self, i: usize, info: f64) -> bool;
}

/// Slack, in log units, on the skip test below, so that rounding can never skip
/// an item that would have been chosen.
const SKIP_MARGIN: f64 = 1e-9;

/// Offers every item not administered to `sink`, in index order, skipping those
/// that provably cannot beat its bar.
///
/// Bound: the 4PL information never exceeds the 2PL one, a² s(1 − s) (see
/// `model::information`), and s(1 − s) ≤ e^(−|z|) with z = a(θ − b); so
/// I ≤ a² e^(−a|θ − b|), and an item with a|θ − b| > ln a² − ln(bar) cannot beat the
/// bar. This costs a multiply and a compare, where the information costs an `exp`
/// and three divisions; once a good item is found most of the bank is skipped.
#[inline]
fn scan(bank: &ItemBank, theta: f64, administered: &[usize], sink: &mut impl Sink) {
    let theta = sane_theta(theta);
    let (a, b, c, d) = bank.columns();
    let ln_a2 = bank.ln_a2();
    with_taken(bank.len(), administered, |taken| {
        let mut ln_bar = sink.ln_bar();
        for i in 0..a.len() {
            // Written so that NaN (unchecked parameters) is never skipped.
            if is_taken(taken, i) || a[i] * (theta - b[i]).abs() > ln_a2[i] - ln_bar + SKIP_MARGIN {
                continue;
            }
            if sink.offer(i, model::information(a[i], b[i], c[i], d[i], theta)) {
                ln_bar = sink.ln_bar();
            }
        }
    });
}

/// The best item so far, for [`MaxInfo`].
struct Best(Option<(usize, f64)>);

impl Sink for Best {
    #[inline]
    fn ln_bar(&self) -> f64 {
        self.0.map_or(f64::NEG_INFINITY, |(_, info)| info.ln())
    }

    #[inline]
    fn offer(&mut self, i: usize, info: f64) -> bool {
        match self.0 {
            // Strictly greater: the first (lowest) index wins ties.
            Some((_, top)) if info <= top => false,
            _ => {
                self.0 = Some((i, info));
                true
            }
        }
    }
}

impl Selector for MaxInfo {
    fn select(
        &self,
        bank: &ItemBank,
        theta: f64,
        administered: &[usize],
        _rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let mut best = Best(None);
        scan(bank, theta, administered, &mut best);
        best.0.map(|(i, _)| i)
    }
}

/// Top-k buffers up to this size live on the stack.
const STACK_K: usize = 32;

/// Keeps the `buf.len()` most informative items seen so far, ordered by
/// decreasing information and, among equals, increasing index (the scan visits
/// indexes in increasing order and an item only displaces strictly smaller ones).
struct TopK<'a> {
    buf: &'a mut [(f64, usize)],
    len: usize,
}

impl Sink for TopK<'_> {
    #[inline]
    fn ln_bar(&self) -> f64 {
        if self.len < self.buf.len() {
            f64::NEG_INFINITY
        } else {
            self.buf[self.len - 1].0.ln()
        }
    }

    #[inline]
    fn offer(&mut self, i: usize, info: f64) -> bool {
        let cap = self.buf.len();
        if self.len == cap && info <= self.buf[cap - 1].0 {
            return false;
        }
        // First slot holding strictly less information.
        let mut pos = self.len.min(cap - 1);
        while pos > 0 && self.buf[pos - 1].0 < info {
            pos -= 1;
        }
        let end = self.len.min(cap - 1);
        self.buf.copy_within(pos..end, pos + 1);
        self.buf[pos] = (info, i);
        self.len = (self.len + 1).min(cap);
        self.len == cap
    }
}

impl Selector for Randomesque {
    fn select(
        &self,
        bank: &ItemBank,
        theta: f64,
        administered: &[usize],
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let k = self.k.clamp(1, bank.len().max(1));
        let run = |buf: &mut [(f64, usize)], rng: &mut dyn RngCore| {
            let mut top = TopK { buf, len: 0 };
            scan(bank, theta, administered, &mut top);
            match top.len {
                0 => None,
                // No draw when there is no choice: k = 1 behaves exactly as MaxInfo.
                1 => Some(top.buf[0].1),
                len => Some(top.buf[rng.random_range(0..len)].1),
            }
        };
        if k <= STACK_K {
            let mut buf = [(0.0, 0); STACK_K];
            run(&mut buf[..k], rng)
        } else {
            let mut buf = vec![(0.0, 0); k];
            run(&mut buf, rng)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::ItemParams;
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn bank_of(params: &[(f64, f64)]) -> ItemBank {
        ItemBank::without_concepts(
            params
                .iter()
                .map(|&(a, b)| ItemParams::new(a, b, 0.0, 1.0).unwrap())
                .collect(),
        )
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn max_info_picks_the_most_informative() {
        let bank = bank_of(&[(1.0, -2.0), (1.0, 0.1), (2.0, 1.5), (1.0, 0.0), (0.5, 0.0)]);
        assert_eq!(MaxInfo.select(&bank, 0.0, &[], &mut rng()), Some(3));
        assert_eq!(MaxInfo.select(&bank, 0.0, &[3], &mut rng()), Some(1));
        assert_eq!(MaxInfo.select(&bank, 1.5, &[], &mut rng()), Some(2));
        assert_eq!(MaxInfo.select(&bank, -2.0, &[0, 99], &mut rng()), Some(3));
        assert_eq!(
            MaxInfo.select(&bank, 0.0, &[0, 1, 2, 3, 4], &mut rng()),
            None
        );
        assert_eq!(
            MaxInfo.select(&ItemBank::default(), 0.0, &[], &mut rng()),
            None
        );
        // NaN θ cannot make a bank look exhausted.
        assert!(MaxInfo.select(&bank, f64::NAN, &[], &mut rng()).is_some());
    }

    #[test]
    fn max_info_ties_go_to_lowest_index() {
        let bank = bank_of(&[(1.0, 1.0), (1.0, 0.0), (1.0, 0.0), (1.0, -1.0)]);
        assert_eq!(MaxInfo.select(&bank, 0.0, &[], &mut rng()), Some(1));
        assert_eq!(MaxInfo.select(&bank, 0.0, &[1], &mut rng()), Some(2));
        // Items with zero information everywhere near θ still get picked.
        let far = bank_of(&[(50.0, 5.0), (50.0, -5.0)]);
        assert_eq!(MaxInfo.select(&far, 0.0, &[], &mut rng()), Some(0));
    }

    #[test]
    fn large_banks_use_the_heap_bitset() {
        let bank = bank_of(
            &(0..20_000)
                .map(|i| (1.0, f64::from(i) / 1000.0))
                .collect::<Vec<_>>(),
        );
        assert_eq!(MaxInfo.select(&bank, 15.0, &[], &mut rng()), Some(15_000));
        assert_eq!(
            MaxInfo.select(&bank, 15.0, &[15_000], &mut rng()),
            Some(14_999)
        );
    }

    #[test]
    fn randomesque_draws_among_top_k() {
        // Information at θ = 0 decreases with |b|: the top 3 are items 2, 1 and 3.
        let bank = bank_of(&[(1.0, -2.0), (1.0, -0.5), (1.0, 0.0), (1.0, 0.6), (1.0, 3.0)]);
        let sel = Randomesque { k: 3 };
        let mut r = rng();
        let mut seen = [0usize; 5];
        for _ in 0..600 {
            seen[sel.select(&bank, 0.0, &[], &mut r).unwrap()] += 1;
        }
        assert_eq!(seen[0] + seen[4], 0, "{seen:?}");
        for i in 1..4 {
            assert!(seen[i] > 120, "{seen:?}");
        }
        // k = 1 and k = 0 are MaxInfo; a k beyond the bank draws among everything left.
        for k in [0, 1] {
            assert_eq!(Randomesque { k }.select(&bank, 0.0, &[2], &mut r), Some(1));
        }
        let big = Randomesque { k: 100 };
        for _ in 0..50 {
            let i = big.select(&bank, 0.0, &[0, 1, 2], &mut r).unwrap();
            assert!(i == 3 || i == 4);
        }
        assert_eq!(big.select(&bank, 0.0, &[0, 1, 2, 3, 4], &mut r), None);
        assert_eq!(
            Randomesque { k: 40 }.select(&bank, 0.0, &[0, 1, 2, 3], &mut r),
            Some(4)
        );
    }

    #[test]
    fn randomesque_is_deterministic_for_a_seed() {
        let bank = bank_of(
            &(0..50)
                .map(|i| (1.0 + f64::from(i % 7) * 0.1, f64::from(i) / 10.0 - 2.5))
                .collect::<Vec<_>>(),
        );
        let sel = Randomesque { k: 5 };
        let run = |seed: u64| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|j| {
                    sel.select(&bank, f64::from(j) / 10.0 - 1.0, &[], &mut r)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn top_k_keeps_order() {
        let mut buf = [(0.0, 0); 3];
        let mut top = TopK {
            buf: &mut buf,
            len: 0,
        };
        for (i, info) in [0.5, 0.9, 0.5, 0.7, 0.9, 0.1].into_iter().enumerate() {
            top.offer(i, info);
        }
        assert_eq!(top.len, 3);
        assert_eq!(buf, [(0.9, 1), (0.9, 4), (0.7, 3)]);
    }

    proptest! {
        #[test]
        fn skipping_scan_matches_brute_force(
            params in proptest::collection::vec((0.2f64..3.0, -4.0f64..4.0, 0.0f64..0.3, 0.8f64..1.0), 1..80),
            taken in proptest::collection::vec(0usize..80, 0..20),
            theta in -6.0f64..6.0,
            k in 1usize..10,
        ) {
            let bank = ItemBank::without_concepts(
                params.iter().map(|&(a, b, c, d)| ItemParams::new(a, b, c, d).unwrap()).collect(),
            );
            // Brute force: every item left, by decreasing information then index.
            let mut all: Vec<(f64, usize)> = (0..bank.len())
                .filter(|i| !taken.contains(i))
                .map(|i| (bank.information(i, theta), i))
                .collect();
            all.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            all.truncate(k);
            let mut buf = vec![(0.0, 0); k];
            let mut top = TopK { buf: &mut buf, len: 0 };
            scan(&bank, theta, &taken, &mut top);
            let len = top.len;
            prop_assert_eq!(&buf[..len], &all[..]);
            let mut best = Best(None);
            scan(&bank, theta, &taken, &mut best);
            prop_assert_eq!(best.0.map(|(i, _)| i), all.first().map(|x| x.1));
        }

        #[test]
        fn never_returns_administered(
            params in proptest::collection::vec((0.2f64..3.0, -4.0f64..4.0), 0..60),
            taken in proptest::collection::vec(0usize..70, 0..70),
            theta in -6.0f64..6.0,
            k in 0usize..8,
            seed in any::<u64>(),
        ) {
            let bank = bank_of(&params);
            let left = (0..bank.len()).filter(|i| !taken.contains(i)).count();
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            for sel in [&MaxInfo as &dyn Selector, &Randomesque { k }] {
                match sel.select(&bank, theta, &taken, &mut r) {
                    Some(i) => {
                        prop_assert!(i < bank.len() && !taken.contains(&i));
                    }
                    None => prop_assert_eq!(left, 0),
                }
            }
            // MaxInfo really is a maximum over what is left.
            if let Some(i) = MaxInfo.select(&bank, theta, &taken, &mut r) {
                let best = bank.information(i, theta);
                for j in (0..bank.len()).filter(|j| !taken.contains(j)) {
                    prop_assert!(bank.information(j, theta) <= best);
                }
            }
        }
    }
}
