//! Next-item selection: maximum Fisher information (Lord 1980), randomesque
//! exposure control (Kingsbury & Zara 1989), content balancing toward target
//! proportions (Kingsbury & Zara's constrained CAT, 1989) and Sympson–Hetter
//! exposure control (Sympson & Hetter 1985).
//!
//! The base selectors are a single linear scan over the bank's parameter columns;
//! the bank is never sorted and, for banks up to 65,536 items, nothing is
//! allocated. Content balancing and Sympson–Hetter wrap another selector and
//! narrow what it may pick through [`Candidates`], so they compose:
//! `SympsonHetter::new(Box::new(ContentBalanced::new(targets, Box::new(Randomesque { k: 3 }))?))`.

use rand::{Rng, RngCore};

use super::bank::ItemBank;
use super::model;

/// Chooses the next item of an adaptive test.
pub trait Selector: Send + Sync {
    /// The next item at ability `theta` among `candidates`; `None` when none is left.
    /// A non-finite `theta` is read as 0 (NaN) or clamped to ±1e6, so it cannot
    /// make a non-empty bank look exhausted.
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize>;

    /// The next item, never one listed in `administered` (indexes there that are
    /// not in `bank` are ignored); `None` when every item has been administered
    /// (or, with content balancing, every item of every concept).
    fn select(
        &self,
        bank: &ItemBank,
        theta: f64,
        administered: &[usize],
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        Candidates::with(bank.len(), administered, |c| {
            self.choose(bank, theta, c, rng)
        })
    }
}

/// Banks up to this many 64-item words keep the candidate bitset on the stack.
const STACK_WORDS: usize = 1024; // 65,536 items, 8 KiB
/// Banks up to this many words (1,024 items) use a small stack bitset, so the
/// usual selection does not clear 8 KiB.
const SMALL_WORDS: usize = 16;

/// The items one selection may pick: not administered, not set aside during this
/// selection (a Sympson–Hetter rejection, an enemy of an administered item), and,
/// by their concept tags: while a concept is set ([`Candidates::restrict`]),
/// tagged with it; and, for content constraints, tagged with none of the
/// forbidden concepts and, while a required list is set, with at least one of
/// its concepts.
///
/// The tag filters are checked lazily, only on the items a scan actually reaches
/// (a few dozen), never by a pass over the bank.
pub struct Candidates<'a> {
    administered: &'a [usize],
    /// Bit i set: item i may not be picked.
    closed: &'a mut [u64],
    concept: Option<u16>,
    /// Items tagged with any of these may not be picked.
    forbidden: &'a [u16],
    /// While set, only items tagged with one of these may be picked.
    any_of: Option<&'a [u16]>,
    /// True while any tag filter is set: the only tag test on the unfiltered path.
    filtered: bool,
}

impl<'a> Candidates<'a> {
    /// Runs `f` with the candidates of a bank of `n` items after `administered`.
    pub fn with<R>(
        n: usize,
        administered: &[usize],
        f: impl FnOnce(&mut Candidates<'_>) -> R,
    ) -> R {
        Candidates::with_tags(n, administered, &[], None, f)
    }

    /// [`Candidates::with`], ruling out items tagged with any of `forbidden` and,
    /// when `any_of` is set, items tagged with none of its concepts
    /// (see [`Candidates::require_any`]).
    pub(crate) fn with_tags<R>(
        n: usize,
        administered: &[usize],
        forbidden: &[u16],
        any_of: Option<&[u16]>,
        f: impl FnOnce(&mut Candidates<'_>) -> R,
    ) -> R {
        let words = n.div_ceil(64);
        let run = |bits: &mut [u64]| {
            for &i in administered {
                if i < n {
                    bits[i / 64] |= 1u64 << (i % 64);
                }
            }
            let mut candidates = Candidates {
                administered,
                closed: bits,
                concept: None,
                forbidden,
                any_of,
                filtered: false,
            };
            candidates.refilter();
            f(&mut candidates)
        };
        if words <= SMALL_WORDS {
            let mut bits = [0u64; SMALL_WORDS];
            run(&mut bits[..words])
        } else if words <= STACK_WORDS {
            let mut bits = [0u64; STACK_WORDS];
            run(&mut bits[..words])
        } else {
            run(&mut vec![0u64; words])
        }
    }

    /// The items administered so far, as given.
    pub fn administered(&self) -> &[usize] {
        self.administered
    }

    /// Sets item `i` aside for the rest of this selection.
    pub fn exclude(&mut self, i: usize) {
        if let Some(word) = self.closed.get_mut(i / 64) {
            *word |= 1u64 << (i % 64);
        }
    }

    /// Restricts the candidates to items tagged `concept` (`None` lifts it);
    /// returns the previous restriction.
    pub fn restrict(&mut self, concept: Option<u16>) -> Option<u16> {
        let previous = std::mem::replace(&mut self.concept, concept);
        self.refilter();
        previous
    }

    /// Restricts the candidates to items tagged with at least one of `concepts`
    /// (`None` lifts it; `Some(&[])` rules out everything); returns the previous
    /// list. Unlike [`Candidates::restrict`] it takes several concepts and is
    /// independent of it, so a [`ContentBalanced`] selector narrows within it.
    pub(crate) fn require_any(&mut self, concepts: Option<&'a [u16]>) -> Option<&'a [u16]> {
        let previous = std::mem::replace(&mut self.any_of, concepts);
        self.refilter();
        previous
    }

    fn refilter(&mut self) {
        self.filtered =
            self.concept.is_some() || !self.forbidden.is_empty() || self.any_of.is_some();
    }

    #[inline]
    fn is_open(&self, bank: &ItemBank, i: usize) -> bool {
        self.closed[i / 64] >> (i % 64) & 1 == 0
            && (!self.filtered || self.tags_pass(bank.concepts(i)))
    }

    /// Whether an item with these tags passes the tag filters.
    #[inline]
    fn tags_pass(&self, tags: &[u16]) -> bool {
        self.concept.is_none_or(|c| tags.contains(&c))
            && (self.forbidden.is_empty() || !tags.iter().any(|t| self.forbidden.contains(t)))
            && self
                .any_of
                .is_none_or(|wanted| tags.iter().any(|t| wanted.contains(t)))
    }
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

/// Offers open candidates to `sink`, skipping those that provably cannot beat
/// its bar, and stopping once no later item can.
///
/// Items are visited in decreasing order of their maximum information over θ
/// (the bank's scan order), so once that maximum falls below the bar, nothing
/// further can matter and the scan ends. Within the scan, a second bound skips
/// items far from θ: the 4PL information never exceeds the 2PL one, a² s(1 − s)
/// (see `model::information`), and s(1 − s) ≤ e^(−|z|) with z = a(θ − b); so
/// I ≤ a² e^(−a|θ − b|), and an item with a|θ − b| > ln a² − ln(bar) cannot beat the
/// bar. Both tests cost a multiply and a compare, where the information costs an
/// `exp` and three divisions. A polytomous item has a bound of the same shape,
/// measured from the nearer end of its thresholds (see `poly::Kind::ln_bound`).
#[inline]
fn scan(bank: &ItemBank, theta: f64, candidates: &Candidates<'_>, sink: &mut impl Sink) {
    if bank.scan_order().any_polytomous {
        scan_models::<true>(bank, theta, candidates, sink)
    } else {
        scan_models::<false>(bank, theta, candidates, sink)
    }
}

/// The scan, compiled twice: with `POLY` false (a bank of dichotomous items
/// only) the loop never reads the item kinds.
#[inline]
fn scan_models<const POLY: bool>(
    bank: &ItemBank,
    theta: f64,
    candidates: &Candidates<'_>,
    sink: &mut impl Sink,
) {
    let theta = sane_theta(theta);
    let order = bank.scan_order();
    let mut ln_bar = sink.ln_bar();
    for pos in 0..order.index.len() {
        // An item whose best could only tie the bar may still win a tie on index.
        if order.ln_max[pos] < ln_bar - SKIP_MARGIN {
            break;
        }
        let a = order.a[pos];
        let i = order.index[pos] as usize;
        let info = match if POLY { order.kind[pos] } else { None } {
            None => {
                let b = order.lo[pos];
                // Written so that NaN (unchecked parameters) is never skipped.
                if a * (theta - b).abs() > order.ln_bound[pos] - ln_bar + SKIP_MARGIN
                    || !candidates.is_open(bank, i)
                {
                    continue;
                }
                model::information(a, b, order.c[pos], order.d[pos], theta)
            }
            Some(kind) => {
                let distance = (order.lo[pos] - theta).max(theta - order.hi[pos]).max(0.0);
                if a * distance > order.ln_bound[pos] - ln_bar + SKIP_MARGIN
                    || !candidates.is_open(bank, i)
                {
                    continue;
                }
                let item = order.poly(pos, kind);
                // Inside the thresholds' span, the nearest one bounds a GRM item.
                if a * item.nearest(theta) > order.ln_near[pos] - ln_bar + SKIP_MARGIN {
                    continue;
                }
                item.information(theta)
            }
        };
        if sink.offer(i, info) {
            ln_bar = sink.ln_bar();
        }
    }
}

/// True when (`info`, `i`) ranks before (`other_info`, `j`): more information,
/// or as much and a lower index.
#[inline]
fn ranks_before(info: f64, i: usize, other_info: f64, j: usize) -> bool {
    info > other_info || (info == other_info && i < j)
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
            Some((j, top)) if !ranks_before(info, i, top, j) => false,
            _ => {
                self.0 = Some((i, info));
                true
            }
        }
    }
}

impl Selector for MaxInfo {
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        _rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let mut best = Best(None);
        scan(bank, theta, candidates, &mut best);
        best.0.map(|(i, _)| i)
    }
}

/// Top-k buffers up to this size live on the stack.
const STACK_K: usize = 32;

/// Keeps the `buf.len()` most informative items seen so far, ordered by
/// decreasing information and, among equals, increasing index.
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
        if self.len == cap {
            let (last, j) = self.buf[cap - 1];
            if !ranks_before(info, i, last, j) {
                return false;
            }
        }
        // First slot that the newcomer ranks before.
        let mut pos = self.len.min(cap - 1);
        while pos > 0 && ranks_before(info, i, self.buf[pos - 1].0, self.buf[pos - 1].1) {
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
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let k = self.k.clamp(1, bank.len().max(1));
        let run = |buf: &mut [(f64, usize)], rng: &mut dyn RngCore| {
            let mut top = TopK { buf, len: 0 };
            scan(bank, theta, candidates, &mut top);
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
            run(&mut vec![(0.0, 0); k], rng)
        }
    }
}

/// Most target concepts a [`ContentBalanced`] selector takes.
pub const MAX_TARGETS: usize = 64;

/// Content balancing (Kingsbury & Zara 1989): before each item, the concept whose
/// share of the items given so far lies furthest below its target proportion is
/// chosen, and the inner selector picks within it. An item tagged with several
/// target concepts counts toward each. When a concept has no item left the next
/// most under-represented one is tried; when none has, the inner selector picks
/// from the whole bank.
pub struct ContentBalanced {
    targets: Vec<(u16, f64)>,
    inner: Box<dyn Selector>,
}

impl ContentBalanced {
    /// Balances toward `targets` (concept id, proportion); proportions must be finite
    /// and > 0 and are rescaled to sum to 1; at most [`MAX_TARGETS`] distinct concepts.
    pub fn new(targets: Vec<(u16, f64)>, inner: Box<dyn Selector>) -> Result<Self, String> {
        if targets.is_empty() || targets.len() > MAX_TARGETS {
            return Err(format!(
                "content balancing needs 1 to {MAX_TARGETS} concepts (got {})",
                targets.len()
            ));
        }
        for (n, &(c, p)) in targets.iter().enumerate() {
            if !(p.is_finite() && p > 0.0) {
                return Err(format!(
                    "target proportion of concept {c} must be > 0 (got {p})"
                ));
            }
            if targets[..n].iter().any(|&(d, _)| d == c) {
                return Err(format!("concept {c} is targeted twice"));
            }
        }
        let total: f64 = targets.iter().map(|t| t.1).sum();
        let targets = targets.into_iter().map(|(c, p)| (c, p / total)).collect();
        Ok(ContentBalanced { targets, inner })
    }

    /// The targets, proportions summing to 1.
    pub fn targets(&self) -> &[(u16, f64)] {
        &self.targets
    }
}

impl Selector for ContentBalanced {
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let mut counts = [0u32; MAX_TARGETS];
        let mut given = 0u32;
        for &i in candidates
            .administered()
            .iter()
            .filter(|&&i| i < bank.len())
        {
            given += 1;
            for tag in bank.concepts(i) {
                if let Some(t) = self.targets.iter().position(|&(c, _)| c == *tag) {
                    counts[t] += 1;
                }
            }
        }
        let share = |t: usize| {
            if given == 0 {
                0.0
            } else {
                f64::from(counts[t]) / f64::from(given)
            }
        };
        let outer = candidates.concept;
        let mut tried = 0u64;
        for _ in 0..self.targets.len() {
            // The untried concept furthest below its target; ties to the first listed.
            let mut pick: Option<(usize, f64)> = None;
            for (t, &(_, p)) in self.targets.iter().enumerate() {
                let deficit = p - share(t);
                if tried >> t & 1 == 0 && pick.is_none_or(|(_, best)| deficit > best) {
                    pick = Some((t, deficit));
                }
            }
            let Some((t, _)) = pick else { break };
            tried |= 1 << t;
            candidates.restrict(Some(self.targets[t].0));
            let chosen = self.inner.choose(bank, theta, candidates, rng);
            candidates.restrict(outer);
            if chosen.is_some() {
                return chosen;
            }
        }
        self.inner.choose(bank, theta, candidates, rng)
    }
}

/// Sympson–Hetter exposure control (Sympson & Hetter 1985): the item the inner
/// selector picks is administered with probability k, its [`ItemBank::exposure`]
/// parameter; otherwise it is set aside for this selection and the inner selector
/// picks again. If every candidate is set aside, the first pick is given, so a
/// test never stops for lack of luck. With every k = 1 it draws nothing and
/// behaves exactly as its inner selector.
///
/// The parameters come from iterative simulations, lowering k for items whose
/// exposure rate exceeds the target (`lectern-cat simulate` shows the rates).
pub struct SympsonHetter {
    inner: Box<dyn Selector>,
}

impl SympsonHetter {
    /// Exposure control over `inner`.
    pub fn new(inner: Box<dyn Selector>) -> Self {
        SympsonHetter { inner }
    }
}

impl Selector for SympsonHetter {
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let mut first = None;
        while let Some(i) = self.inner.choose(bank, theta, candidates, rng) {
            first.get_or_insert(i);
            let k = bank.exposure(i);
            if k >= 1.0 || rng.random::<f64>() < k {
                return Some(i);
            }
            candidates.exclude(i);
        }
        first
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
            &(0..70_000)
                .map(|i| (1.0, f64::from(i) / 1000.0))
                .collect::<Vec<_>>(),
        );
        assert_eq!(MaxInfo.select(&bank, 65.0, &[], &mut rng()), Some(65_000));
        assert_eq!(
            MaxInfo.select(&bank, 65.0, &[65_000], &mut rng()),
            Some(64_999)
        );
    }

    /// Items with b spread over [−2, 2], concept `i % 3`.
    fn tagged_bank(n: usize) -> ItemBank {
        let items = (0..n)
            .map(|i| ItemParams::new(1.0, -2.0 + 4.0 * i as f64 / n as f64, 0.0, 1.0).unwrap())
            .collect();
        ItemBank::new(items, (0..n).map(|i| vec![(i % 3) as u16]).collect())
    }

    #[test]
    fn content_balancing_follows_the_targets() {
        let bank = tagged_bank(90);
        let sel =
            ContentBalanced::new(vec![(0, 2.0), (1, 1.0), (2, 1.0)], Box::new(MaxInfo)).unwrap();
        assert_eq!(sel.targets(), &[(0, 0.5), (1, 0.25), (2, 0.25)]);
        let mut given = Vec::new();
        for _ in 0..20 {
            let i = sel.select(&bank, 0.0, &given, &mut rng()).unwrap();
            assert!(!given.contains(&i));
            given.push(i);
        }
        let count = |c: usize| given.iter().filter(|&&i| i % 3 == c).count();
        assert_eq!((count(0), count(1), count(2)), (10, 5, 5), "{given:?}");
        // The first pick is the best item of the most under-represented concept (0).
        let first = sel.select(&bank, 0.0, &[], &mut rng()).unwrap();
        assert_eq!(first % 3, 0);
        let best_of_0 = (0..90)
            .filter(|i| i % 3 == 0)
            .max_by(|&x, &y| {
                bank.information(x, 0.0)
                    .total_cmp(&bank.information(y, 0.0))
            })
            .unwrap();
        assert_eq!(
            bank.information(first, 0.0),
            bank.information(best_of_0, 0.0)
        );
    }

    #[test]
    fn content_balancing_moves_on_when_a_concept_runs_out() {
        let bank = tagged_bank(9);
        // Concept 7 has no items at all; concept 0 has three.
        let sel = ContentBalanced::new(vec![(7, 0.9), (0, 0.1)], Box::new(MaxInfo)).unwrap();
        let mut given = Vec::new();
        while let Some(i) = sel.select(&bank, 0.0, &given, &mut rng()) {
            given.push(i);
        }
        assert_eq!(given.len(), 9, "falls back to the whole bank");
        assert!(given[..3].iter().all(|i| i % 3 == 0), "{given:?}");
        for bad in [
            vec![],
            vec![(1, 0.0)],
            vec![(1, f64::NAN)],
            vec![(1, 0.5), (1, 0.5)],
        ] {
            assert!(ContentBalanced::new(bad, Box::new(MaxInfo)).is_err());
        }
    }

    #[test]
    fn sympson_hetter_limits_exposure() {
        // Item 2 is the most informative at θ = 0 but may be given only 20 % of the time.
        let bank = bank_of(&[(1.0, -2.0), (1.0, -0.5), (1.0, 0.0), (1.0, 0.6), (1.0, 3.0)])
            .with_exposure(vec![1.0, 1.0, 0.2, 1.0, 1.0]);
        let sel = SympsonHetter::new(Box::new(MaxInfo));
        let mut r = rng();
        let n = 5000;
        let hits = (0..n)
            .filter(|_| sel.select(&bank, 0.0, &[], &mut r) == Some(2))
            .count();
        let rate = hits as f64 / n as f64;
        assert!((rate - 0.2).abs() < 0.03, "{rate}");
        // The others go to the next best, item 1.
        let mut r = rng();
        for _ in 0..50 {
            let i = sel.select(&bank, 0.0, &[], &mut r).unwrap();
            assert!(i == 1 || i == 2);
        }
        // Every k = 0: nothing passes, the first pick is given anyway.
        let closed = bank_of(&[(1.0, 0.0), (1.0, 1.0)]).with_exposure(vec![0.0, 0.0]);
        assert_eq!(sel.select(&closed, 0.0, &[], &mut rng()), Some(0));
        assert_eq!(sel.select(&closed, 0.0, &[0, 1], &mut rng()), None);
        // With every k = 1 it draws nothing: the RNG is left untouched.
        let plain = bank_of(&[(1.0, 0.0), (1.0, 1.0)]);
        let (mut r1, r2) = (rng(), rng());
        assert_eq!(sel.select(&plain, 0.0, &[], &mut r1), Some(0));
        assert_eq!(r1, r2);
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
        // Offers come in scan order, not index order: ties still go to the lower index.
        let mut buf = [(0.0, 0); 2];
        let mut top = TopK {
            buf: &mut buf,
            len: 0,
        };
        for (i, info) in [(7, 0.9), (5, 0.9), (2, 0.4), (6, 0.9)] {
            top.offer(i, info);
        }
        assert_eq!(buf, [(0.9, 5), (0.9, 6)]);
        let mut best = Best(None);
        for (i, info) in [(7, 0.9), (5, 0.9), (9, 0.9)] {
            best.offer(i, info);
        }
        assert_eq!(best.0, Some((5, 0.9)));
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
            Candidates::with(bank.len(), &taken, |c| scan(&bank, theta, c, &mut top));
            let len = top.len;
            prop_assert_eq!(&buf[..len], &all[..]);
            let mut best = Best(None);
            Candidates::with(bank.len(), &taken, |c| scan(&bank, theta, c, &mut best));
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
