//! The item bank, stored as a struct of arrays so that the selection scan and the
//! likelihood loops walk contiguous `f64` slices.

use super::item::Item;
use super::model::{self, ItemParams};
use super::poly::{self, Kind, Poly, PolyModel, PolyParams};

/// An item bank: item parameters as struct-of-arrays plus each item's concept
/// tags. Dichotomous (1PL–4PL) and polytomous (GRM, GPCM, PCM) items mix freely.
///
/// Concept tags are small integer ids; mapping them to names is the caller's job.
/// Tags and polytomous thresholds are stored flattened (one array plus offsets)
/// rather than as one `Vec` per item, so a bank is a handful of allocations
/// whatever its size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemBank {
    a: Vec<f64>,
    /// b of a dichotomous item (the first threshold of a polytomous one).
    b: Vec<f64>,
    c: Vec<f64>,
    d: Vec<f64>,
    /// `None` for a dichotomous item.
    poly: Vec<Option<PolyModel>>,
    /// `thresholds[threshold_start[i]..threshold_start[i + 1]]` are item i's
    /// thresholds or steps (none for a dichotomous item).
    thresholds: Vec<f64>,
    /// The GRM gaps of each item, beside its thresholds (see `poly::gaps`).
    gaps: Vec<f64>,
    threshold_start: Vec<usize>,
    /// The items in the order selection scans them (see [`ScanOrder`]).
    scan: ScanOrder,
    /// `concept_ids[concept_start[i]..concept_start[i + 1]]` are the tags of item `i`.
    concept_ids: Vec<u16>,
    concept_start: Vec<usize>,
    /// Sympson–Hetter exposure parameters (probability of administering the item
    /// once selected); empty means 1 for every item.
    exposure: Vec<f64>,
}

impl ItemBank {
    /// Builds a bank from items ([`ItemParams`], [`PolyParams`] or [`Item`]) and,
    /// for each item, its concept ids.
    ///
    /// # Panics
    /// If `items` and `concepts` have different lengths (pass `vec![vec![]; n]` for
    /// untagged items, or use [`ItemBank::without_concepts`]).
    pub fn new<I: Into<Item>>(items: Vec<I>, concepts: Vec<Vec<u16>>) -> ItemBank {
        assert_eq!(
            items.len(),
            concepts.len(),
            "ItemBank::new: {} items but {} concept lists",
            items.len(),
            concepts.len()
        );
        let items: Vec<Item> = items.into_iter().map(Into::into).collect();
        let n = items.len();
        let mut bank = ItemBank {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            c: Vec::with_capacity(n),
            d: Vec::with_capacity(n),
            poly: Vec::with_capacity(n),
            thresholds: Vec::new(),
            gaps: Vec::new(),
            threshold_start: Vec::with_capacity(n + 1),
            concept_ids: Vec::with_capacity(concepts.iter().map(Vec::len).sum()),
            concept_start: Vec::with_capacity(n + 1),
            exposure: Vec::new(),
            scan: ScanOrder::default(),
        };
        bank.concept_start.push(0);
        bank.threshold_start.push(0);
        for (item, tags) in items.iter().zip(&concepts) {
            match item {
                Item::Dichotomous(p) => {
                    bank.a.push(p.a);
                    bank.b.push(p.b);
                    bank.c.push(p.c);
                    bank.d.push(p.d);
                    bank.poly.push(None);
                }
                Item::Polytomous(p) => {
                    bank.a.push(p.a());
                    bank.b.push(p.thresholds()[0]);
                    bank.c.push(0.0);
                    bank.d.push(1.0);
                    bank.poly.push(Some(p.model()));
                    bank.thresholds.extend_from_slice(p.thresholds());
                    let m = p.thresholds().len();
                    bank.gaps
                        .extend_from_slice(&poly::gaps(p.model(), p.a(), p.thresholds())[..m]);
                }
            }
            bank.threshold_start.push(bank.thresholds.len());
            bank.concept_ids.extend_from_slice(tags);
            bank.concept_start.push(bank.concept_ids.len());
        }
        bank.scan = ScanOrder::new(&bank);
        bank
    }

    /// Builds a bank whose items carry no concept tags.
    pub fn without_concepts<I: Into<Item>>(items: Vec<I>) -> ItemBank {
        let n = items.len();
        ItemBank::new(items, vec![Vec::new(); n])
    }

    /// Sets the Sympson–Hetter exposure parameter of every item: the probability
    /// that the item is administered once the selector picks it. Values are
    /// clamped into [0, 1] (NaN reads as 1).
    ///
    /// # Panics
    /// If `k.len() != self.len()`.
    pub fn with_exposure(mut self, k: Vec<f64>) -> ItemBank {
        assert_eq!(
            k.len(),
            self.len(),
            "ItemBank::with_exposure: {} parameters for {} items",
            k.len(),
            self.len()
        );
        self.exposure = k
            .into_iter()
            .map(|k| if k.is_nan() { 1.0 } else { k.clamp(0.0, 1.0) })
            .collect();
        self
    }

    /// Sympson–Hetter exposure parameter of item `i` (1 when none was set).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn exposure(&self, i: usize) -> f64 {
        assert!(i < self.len(), "item {i} out of range");
        self.exposure.get(i).copied().unwrap_or(1.0)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// True when the bank holds no item.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Item `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`; see [`ItemBank::get`] for a checked version.
    pub fn item(&self, i: usize) -> Item {
        match self.poly[i] {
            None => Item::Dichotomous(self.params(i)),
            Some(model) => Item::Polytomous(
                PolyParams::new(model, self.a[i], self.thresholds_of(i).to_vec())
                    .expect("stored from validated parameters"),
            ),
        }
    }

    /// Item `i`, or `None` when `i` is out of range.
    pub fn get(&self, i: usize) -> Option<Item> {
        (i < self.len()).then(|| self.item(i))
    }

    /// The highest score of item `i` (1 for a dichotomous item).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn max_score(&self, i: usize) -> u8 {
        (self.threshold_start[i + 1] - self.threshold_start[i]).max(1) as u8
    }

    /// True when at least one item is polytomous.
    pub fn has_polytomous(&self) -> bool {
        self.poly.iter().any(Option::is_some)
    }

    /// Concept ids of item `i`, in the order given to [`ItemBank::new`].
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn concepts(&self, i: usize) -> &[u16] {
        &self.concept_ids[self.concept_start[i]..self.concept_start[i + 1]]
    }

    /// Probability of item `i`'s highest score at `theta` (of a correct answer,
    /// for a dichotomous item).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn probability(&self, i: usize, theta: f64) -> f64 {
        match self.poly(i) {
            None => model::probability(self.a[i], self.b[i], self.c[i], self.d[i], theta),
            Some(item) => item.ln_probability(item.b.len(), theta).exp(),
        }
    }

    /// Expected score of item `i` at `theta` (the probability of a correct
    /// answer, for a dichotomous item).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn expected_score(&self, i: usize, theta: f64) -> f64 {
        match self.poly(i) {
            None => self.probability(i, theta),
            Some(item) => (1..=item.b.len())
                .map(|k| k as f64 * item.ln_probability(k, theta).exp())
                .sum(),
        }
    }

    /// Fisher information of item `i` at `theta` (see [`Item::information`]).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn information(&self, i: usize, theta: f64) -> f64 {
        match self.poly(i) {
            None => model::information(self.a[i], self.b[i], self.c[i], self.d[i], theta),
            Some(item) => item.information(theta),
        }
    }

    /// Test information at `theta`: the sum of the information of `items`
    /// (indexes out of range are skipped).
    pub fn test_information(&self, items: &[usize], theta: f64) -> f64 {
        items
            .iter()
            .filter(|&&i| i < self.len())
            .map(|&i| self.information(i, theta))
            .sum()
    }

    /// The highest Fisher information item `i` reaches at any θ.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn max_information(&self, i: usize) -> f64 {
        match self.poly(i) {
            None => max_information(&self.params(i)),
            Some(item) => poly::max_information(&item),
        }
    }

    /// The items in scan order, for the hot loop of selection.
    #[inline]
    pub(crate) fn scan_order(&self) -> &ScanOrder {
        &self.scan
    }

    /// The 4PL columns of item `i` (for a polytomous item, a, its first
    /// threshold, c = 0, d = 1: meaningful only for dichotomous items).
    #[inline]
    fn params(&self, i: usize) -> ItemParams {
        ItemParams {
            a: self.a[i],
            b: self.b[i],
            c: self.c[i],
            d: self.d[i],
        }
    }

    #[inline]
    fn thresholds_of(&self, i: usize) -> &[f64] {
        &self.thresholds[self.threshold_start[i]..self.threshold_start[i + 1]]
    }

    /// Polytomous item `i` as the formulas read it; `None` when dichotomous.
    #[inline]
    fn poly(&self, i: usize) -> Option<Poly<'_>> {
        let range = self.threshold_start[i]..self.threshold_start[i + 1];
        self.poly[i].map(|m| Poly {
            kind: Kind::of(m),
            a: self.a[i],
            b: &self.thresholds[range.clone()],
            gap: &self.gaps[range],
        })
    }

    /// True when the log-likelihood of any answer to item `i` is concave in θ:
    /// 1PL/2PL (`c = 0, d = 1`) and every polytomous item.
    #[inline]
    pub(crate) fn is_log_concave(&self, i: usize) -> bool {
        self.c[i] == 0.0 && self.d[i] == 1.0
    }

    /// Multiplies `post[j]` by the likelihood of `score` on item `i` at
    /// θ_j = lo + j·step; returns the new maximum of `post`.
    #[inline]
    pub(crate) fn multiply_grid(
        &self,
        i: usize,
        score: u8,
        post: &mut [f64],
        lo: f64,
        step: f64,
    ) -> f64 {
        match self.poly(i) {
            None => model::multiply_factor(post, lo, step, &self.factor(i, score != 0)),
            Some(item) => item.multiply_grid(usize::from(score), post, lo, step),
        }
    }

    /// ln of the likelihood of `score` on item `i` at θ, finite even where the
    /// likelihood underflows.
    #[inline]
    pub(crate) fn ln_likelihood(&self, i: usize, theta: f64, score: u8) -> f64 {
        match self.poly(i) {
            None => self.factor(i, score != 0).ln_value(theta),
            Some(item) => item.ln_probability(usize::from(score), theta),
        }
    }

    /// Likelihood factor of answering dichotomous item `i` `correct`ly or not.
    #[inline]
    fn factor(&self, i: usize, correct: bool) -> model::Factor {
        model::Factor::new(self.a[i], self.b[i], self.c[i], self.d[i], correct)
    }

    /// Score, information and Warm's J of `score` on item `i` (see
    /// `model::warm_terms` and `poly`).
    #[inline]
    pub(crate) fn warm_terms(&self, i: usize, theta: f64, score: u8) -> (f64, f64, f64) {
        match self.poly(i) {
            None => {
                let p = self.params(i);
                model::warm_terms(p.a, p.b, p.c, p.d, theta, score != 0)
            }
            Some(item) => item.warm_terms(usize::from(score), theta),
        }
    }

    /// First and second θ-derivatives of the log-likelihood of `score` on item `i`.
    #[inline]
    pub(crate) fn loglik_derivs(&self, i: usize, theta: f64, score: u8) -> (f64, f64) {
        match self.poly(i) {
            None => {
                let p = self.params(i);
                model::loglik_derivs(p.a, p.b, p.c, p.d, theta, score != 0)
            }
            Some(item) => item.loglik_derivs(usize::from(score), theta),
        }
    }

    /// The score drawn for item `i` at `theta` by a uniform `u` in [0, 1) (a
    /// dichotomous item is answered correctly when `u < P`).
    #[inline]
    pub fn draw(&self, i: usize, theta: f64, u: f64) -> u8 {
        match self.poly(i) {
            None => u8::from(u < self.probability(i, theta)),
            Some(item) => poly::draw(&item, theta, u),
        }
    }
}

/// The items sorted by decreasing maximum information (ties by index), with
/// their parameters copied in that order so the scan reads memory sequentially.
///
/// A selection scan walks this order and stops at the first item whose maximum
/// information cannot beat the best found so far: every later item is weaker
/// everywhere. Near the middle of the bank that is a few dozen items, whatever
/// the bank's size. Built once per bank (O(n log n)); never per selection.
///
/// Each item also carries a distance bound, I(θ) ≤ e^(ln_bound − a·δ) with δ the
/// distance from θ to [lo, hi] (its b for a dichotomous item, its smallest and
/// largest thresholds for a polytomous one): see `select::scan`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ScanOrder {
    /// Bank index of each position.
    pub(crate) index: Vec<u32>,
    pub(crate) a: Vec<f64>,
    /// b (dichotomous) or the smallest threshold.
    pub(crate) lo: Vec<f64>,
    /// b (dichotomous) or the largest threshold.
    pub(crate) hi: Vec<f64>,
    pub(crate) c: Vec<f64>,
    pub(crate) d: Vec<f64>,
    /// `None` for a dichotomous item.
    pub(crate) kind: Vec<Option<Kind>>,
    /// True when any item is polytomous (else the scan ignores `kind`).
    pub(crate) any_polytomous: bool,
    /// Thresholds and gaps of position p: `thresholds[start[p]..start[p + 1]]`.
    pub(crate) thresholds: Vec<f64>,
    pub(crate) gaps: Vec<f64>,
    pub(crate) start: Vec<usize>,
    /// ln of the distance bound's constant: ln a² (4PL), see `Kind::ln_bound`.
    pub(crate) ln_bound: Vec<f64>,
    /// ln of the GRM's second bound, from the nearest threshold (see
    /// `Poly::ln_near_bound`); +inf for the other models.
    pub(crate) ln_near: Vec<f64>,
    /// ln of the item's maximum information (non-increasing along the order).
    pub(crate) ln_max: Vec<f64>,
}

impl ScanOrder {
    fn new(bank: &ItemBank) -> ScanOrder {
        let n = bank.len();
        let ln_max: Vec<f64> = (0..n).map(|i| bank.max_information(i).ln()).collect();
        let mut index: Vec<u32> = (0..n as u32).collect();
        // NaN (unchecked parameters) sorts first, so such items are never cut off.
        let key = |i: u32| {
            let v = ln_max[i as usize];
            if v.is_nan() { f64::INFINITY } else { v }
        };
        index.sort_by(|&x, &y| key(y).total_cmp(&key(x)).then(x.cmp(&y)));
        let column = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            index.iter().map(|&i| f(i as usize)).collect()
        };
        let extreme = |i: usize, pick: fn(f64, f64) -> f64| match bank.poly(i) {
            None => bank.b[i],
            Some(item) => item.b.iter().copied().reduce(pick).unwrap_or(bank.b[i]),
        };
        let (mut thresholds, mut gaps) = (Vec::new(), Vec::new());
        let mut start = vec![0];
        for &i in &index {
            let range = bank.threshold_start[i as usize]..bank.threshold_start[i as usize + 1];
            thresholds.extend_from_slice(&bank.thresholds[range.clone()]);
            gaps.extend_from_slice(&bank.gaps[range]);
            start.push(thresholds.len());
        }
        ScanOrder {
            a: column(&|i| bank.a[i]),
            lo: column(&|i| extreme(i, f64::min)),
            hi: column(&|i| extreme(i, f64::max)),
            c: column(&|i| bank.c[i]),
            d: column(&|i| bank.d[i]),
            kind: index
                .iter()
                .map(|&i| bank.poly[i as usize].map(Kind::of))
                .collect(),
            any_polytomous: bank.has_polytomous(),
            thresholds,
            gaps,
            start,
            ln_bound: column(&|i| match bank.poly(i) {
                None => 2.0 * bank.a[i].ln(),
                Some(item) => item.ln_bound(),
            }),
            ln_near: column(&|i| {
                bank.poly(i)
                    .and_then(|item| item.ln_near_bound())
                    .unwrap_or(f64::INFINITY)
            }),
            ln_max: index.iter().map(|&i| key(i)).collect(),
            index,
        }
    }

    /// The polytomous item at scan position `pos`, of arithmetic `kind`.
    #[inline]
    pub(crate) fn poly(&self, pos: usize, kind: Kind) -> Poly<'_> {
        let range = self.start[pos]..self.start[pos + 1];
        Poly {
            kind,
            a: self.a[pos],
            b: &self.thresholds[range.clone()],
            gap: &self.gaps[range],
        }
    }
}

/// Relative slack added to a numerically found maximum, so that it bounds the
/// information from above despite the search's tolerance.
const MAX_INFO_SLACK: f64 = 1e-6;

/// The maximum over θ of an item's Fisher information (an upper bound within
/// 1e-6 relative when found numerically).
///
/// For d = 1 (1PL–3PL) it sits at θ = b + ln((1 + √(1 + 8c)) / 2) / a (Lord 1980,
/// eq. 10-4 with D = 1); for c = 0 the 4PL mirrors the 3PL with c′ = 1 − d. A
/// general 4PL item is searched numerically in z = a(θ − b): a scan with step
/// 0.125 over [−12, 12], then golden-section refinement around the best node. The
/// result never exceeds a²/4, the 2PL maximum, which bounds every 4PL item.
pub(crate) fn max_information(p: &ItemParams) -> f64 {
    let (a, b, c, d) = (p.a, p.b, p.c, p.d);
    let cap = a * a / 4.0;
    let info_at_z = |z: f64| model::information(a, b, c, d, b + z / a);
    let value = if d == 1.0 {
        info_at_z(((1.0 + (1.0 + 8.0 * c).sqrt()) / 2.0).ln())
    } else if c == 0.0 {
        info_at_z(-((1.0 + (1.0 + 8.0 * (1.0 - d)).sqrt()) / 2.0).ln())
    } else {
        let step = 0.125;
        let best = (0..=192)
            .map(|j| -12.0 + step * f64::from(j))
            .max_by(|&x, &y| info_at_z(x).total_cmp(&info_at_z(y)))
            .unwrap_or(0.0);
        let (mut lo, mut hi) = (best - step, best + step);
        let ratio = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..60 {
            let (m1, m2) = (hi - ratio * (hi - lo), lo + ratio * (hi - lo));
            if info_at_z(m1) < info_at_z(m2) {
                lo = m1;
            } else {
                hi = m2;
            }
        }
        info_at_z(0.5 * (lo + hi)) * (1.0 + MAX_INFO_SLACK)
    };
    if value.is_nan() {
        value
    } else {
        value.min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(a: f64, b: f64) -> ItemParams {
        ItemParams::new(a, b, 0.0, 1.0).unwrap()
    }

    #[test]
    fn stores_params_and_concepts() {
        let items = vec![
            item(1.0, -1.0),
            ItemParams::new(1.5, 0.5, 0.2, 0.9).unwrap(),
            item(0.7, 2.0),
        ];
        let bank = ItemBank::new(items.clone(), vec![vec![3, 1], vec![], vec![7]]);
        assert_eq!(bank.len(), 3);
        assert!(!bank.is_empty());
        for (i, it) in items.iter().enumerate() {
            assert_eq!(bank.item(i), Item::from(*it));
            assert_eq!(bank.get(i), Some(Item::from(*it)));
            assert_eq!(bank.probability(i, 0.3), it.probability(0.3));
            assert_eq!(bank.information(i, 0.3), it.information(0.3));
        }
        assert_eq!(bank.get(3), None);
        assert_eq!(bank.concepts(0), &[3, 1]);
        assert!(bank.concepts(1).is_empty());
        assert_eq!(bank.concepts(2), &[7]);
        assert!(bank.is_log_concave(0) && !bank.is_log_concave(1));
        let ti = bank.test_information(&[0, 2, 99], 0.0);
        assert!((ti - items[0].information(0.0) - items[2].information(0.0)).abs() < 1e-15);
    }

    #[test]
    fn max_information_bounds_the_information_everywhere() {
        let mut items = vec![
            item(1.0, 0.0),
            item(2.5, -1.0),
            ItemParams::new(1.2, 0.3, 0.25, 1.0).unwrap(),
            ItemParams::new(0.9, -0.4, 0.0, 0.8).unwrap(),
        ];
        for k in 0..40 {
            let f = f64::from(k);
            let (c, d) = (0.3 * (f * 0.37).fract(), 1.0 - 0.2 * (f * 0.61).fract());
            items.push(ItemParams::new(0.3 + 0.1 * f, (f * 0.7).sin() * 3.0, c, d).unwrap());
        }
        let bank = ItemBank::without_concepts(items.clone());
        for (i, p) in items.iter().enumerate() {
            let top = bank.max_information(i);
            // A dense grid never beats it, and comes within 1e-5 of it.
            let grid = (0..=240_000)
                .map(|j| p.information(-12.0 + f64::from(j) * 1e-4))
                .fold(0.0, f64::max);
            assert!(grid <= top * (1.0 + 1e-12), "{p:?}: {grid} > {top}");
            assert!(grid >= top * (1.0 - 1e-5), "{p:?}: {grid} << {top}");
        }
        // 2PL: a²/4 at θ = b.
        assert!((bank.max_information(1) - 2.5f64.powi(2) / 4.0).abs() < 1e-15);
        // The scan order is by decreasing maximum information.
        let order = bank.scan_order();
        assert!(order.ln_max.windows(2).all(|w| w[0] >= w[1]));
        let mut seen: Vec<u32> = order.index.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..items.len() as u32).collect::<Vec<_>>());
        for (pos, &i) in order.index.iter().enumerate() {
            assert_eq!(order.a[pos], items[i as usize].a);
            assert_eq!(order.d[pos], items[i as usize].d);
        }
    }

    #[test]
    fn empty_bank() {
        let bank = ItemBank::new(Vec::<Item>::new(), vec![]);
        assert!(bank.is_empty());
        assert_eq!(bank.len(), 0);
        assert_eq!(
            ItemBank::without_concepts(vec![item(1.0, 0.0)]).concepts(0),
            &[] as &[u16]
        );
    }

    #[test]
    #[should_panic(expected = "2 items but 1 concept lists")]
    fn length_mismatch_panics() {
        let _ = ItemBank::new(vec![item(1.0, 0.0), item(1.0, 1.0)], vec![vec![]]);
    }
}
