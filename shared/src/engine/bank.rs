//! The item bank, stored as a struct of arrays so that the selection scan and the
//! likelihood loops walk contiguous `f64` slices.

use super::model::{self, ItemParams};

/// An item bank: 4PL parameters as struct-of-arrays plus each item's concept tags.
///
/// Concept tags are small integer ids; mapping them to names is the caller's job.
/// Tags are stored flattened (one array of ids plus offsets) rather than as one
/// `Vec` per item, so a bank is a handful of allocations whatever its size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemBank {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    d: Vec<f64>,
    /// ln(a²) per item, for the information bound that lets selection skip items.
    ln_a2: Vec<f64>,
    /// `concept_ids[concept_start[i]..concept_start[i + 1]]` are the tags of item `i`.
    concept_ids: Vec<u16>,
    concept_start: Vec<usize>,
    /// Sympson–Hetter exposure parameters (probability of administering the item
    /// once selected); empty means 1 for every item.
    exposure: Vec<f64>,
}

impl ItemBank {
    /// Builds a bank from item parameters and, for each item, its concept ids.
    ///
    /// # Panics
    /// If `items` and `concepts` have different lengths (pass `vec![vec![]; n]` for
    /// untagged items, or use [`ItemBank::without_concepts`]).
    pub fn new(items: Vec<ItemParams>, concepts: Vec<Vec<u16>>) -> ItemBank {
        assert_eq!(
            items.len(),
            concepts.len(),
            "ItemBank::new: {} items but {} concept lists",
            items.len(),
            concepts.len()
        );
        let n = items.len();
        let mut bank = ItemBank {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            c: Vec::with_capacity(n),
            d: Vec::with_capacity(n),
            ln_a2: Vec::with_capacity(n),
            concept_ids: Vec::with_capacity(concepts.iter().map(Vec::len).sum()),
            concept_start: Vec::with_capacity(n + 1),
            exposure: Vec::new(),
        };
        bank.concept_start.push(0);
        for (item, tags) in items.iter().zip(&concepts) {
            bank.a.push(item.a);
            bank.b.push(item.b);
            bank.c.push(item.c);
            bank.d.push(item.d);
            bank.ln_a2.push(2.0 * item.a.ln());
            bank.concept_ids.extend_from_slice(tags);
            bank.concept_start.push(bank.concept_ids.len());
        }
        bank
    }

    /// Builds a bank whose items carry no concept tags.
    pub fn without_concepts(items: Vec<ItemParams>) -> ItemBank {
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

    /// Parameters of item `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`; see [`ItemBank::get`] for a checked version.
    pub fn params(&self, i: usize) -> ItemParams {
        ItemParams {
            a: self.a[i],
            b: self.b[i],
            c: self.c[i],
            d: self.d[i],
        }
    }

    /// Parameters of item `i`, or `None` when `i` is out of range.
    pub fn get(&self, i: usize) -> Option<ItemParams> {
        (i < self.len()).then(|| self.params(i))
    }

    /// Concept ids of item `i`, in the order given to [`ItemBank::new`].
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn concepts(&self, i: usize) -> &[u16] {
        &self.concept_ids[self.concept_start[i]..self.concept_start[i + 1]]
    }

    /// Probability that item `i` is answered correctly at `theta`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn probability(&self, i: usize, theta: f64) -> f64 {
        model::probability(self.a[i], self.b[i], self.c[i], self.d[i], theta)
    }

    /// Fisher information of item `i` at `theta` (see [`ItemParams::information`]).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn information(&self, i: usize, theta: f64) -> f64 {
        model::information(self.a[i], self.b[i], self.c[i], self.d[i], theta)
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

    /// The four parameter columns, for the hot loops of selection.
    #[inline]
    pub(crate) fn columns(&self) -> (&[f64], &[f64], &[f64], &[f64]) {
        (&self.a, &self.b, &self.c, &self.d)
    }

    /// ln(a²) per item (see `select`).
    #[inline]
    pub(crate) fn ln_a2(&self) -> &[f64] {
        &self.ln_a2
    }

    /// True when item `i` is 1PL/2PL (`c = 0, d = 1`), whose log-likelihood is concave.
    #[inline]
    pub(crate) fn is_two_pl(&self, i: usize) -> bool {
        self.c[i] == 0.0 && self.d[i] == 1.0
    }

    /// Likelihood factor of answering item `i` `correct`ly or not.
    #[inline]
    pub(crate) fn factor(&self, i: usize, correct: bool) -> model::Factor {
        model::Factor::new(self.a[i], self.b[i], self.c[i], self.d[i], correct)
    }

    /// Fisher information and Warm's J of item `i` at θ (see `model::information_and_j`).
    #[inline]
    pub(crate) fn information_and_j(&self, i: usize, theta: f64) -> (f64, f64) {
        model::information_and_j(self.a[i], self.b[i], self.c[i], self.d[i], theta)
    }

    /// First and second θ-derivatives of the log-likelihood of one answer to item `i`.
    #[inline]
    pub(crate) fn loglik_derivs(&self, i: usize, theta: f64, correct: bool) -> (f64, f64) {
        model::loglik_derivs(self.a[i], self.b[i], self.c[i], self.d[i], theta, correct)
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
            assert_eq!(bank.params(i), *it);
            assert_eq!(bank.get(i), Some(*it));
            assert_eq!(bank.probability(i, 0.3), it.probability(0.3));
            assert_eq!(bank.information(i, 0.3), it.information(0.3));
        }
        assert_eq!(bank.get(3), None);
        assert_eq!(bank.concepts(0), &[3, 1]);
        assert!(bank.concepts(1).is_empty());
        assert_eq!(bank.concepts(2), &[7]);
        assert!(bank.is_two_pl(0) && !bank.is_two_pl(1));
        let ti = bank.test_information(&[0, 2, 99], 0.0);
        assert!((ti - items[0].information(0.0) - items[2].information(0.0)).abs() < 1e-15);
    }

    #[test]
    fn empty_bank() {
        let bank = ItemBank::new(vec![], vec![]);
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
