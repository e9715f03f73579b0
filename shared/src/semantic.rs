//! Vector math for a semantic answer cache: a question is embedded
//! ([`crate::ai::Client::embed`]), normalised, and compared with the
//! questions already answered for the same segment; the nearest one is reused
//! when its cosine similarity reaches a threshold ([`DEFAULT_THRESHOLD`]).
//!
//! Vectors are compared by [`dot`], which equals cosine similarity once both
//! are unit length ([`normalize`]). A brute-force scan ([`nearest`]) is enough
//! for the few thousand questions of one segment: 3,000 vectors of 1,536
//! dimensions take well under a millisecond (`cargo bench -p lectern --bench
//! semantic`).

/// The cosine similarity from which a cached question counts as the same
/// question.
///
/// Chosen as the lowest threshold with precision 1.0 (no paraphrase matched
/// to another group's question, no "different" question matched at all) on
/// `docs/semantic-cache/paraphrases.json` (32 groups, 96 paraphrases, 39 near
/// misses), measured with `semantic-threshold` (`tools/semantic-threshold`)
/// against the test suite's fake embedder (`lectern_tests::fake_ai::embed`: a
/// hashed bag of stemmed words and synonyms, *not* a neural model). There it
/// serves 32 of the 96 paraphrases (hit rate 0.33); at 0.85 two near misses
/// ("raise a power to a fraction" against "raise a fraction to a power", "the
/// same exponent" against "the same base") would be served a wrong answer.
///
/// It is a measured starting point, not a tuned value for production: every
/// embedding model has its own scale of similarities, so re-measure with that
/// tool (`--base-url ... --model ...`) against the model deployed and set
/// `SEMANTIC_CACHE_THRESHOLD` from it.
pub const DEFAULT_THRESHOLD: f32 = 0.90;

/// Scales `v` to unit length in place; a zero vector (or one with a
/// non-finite length) is left as it is.
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = 1.0 / norm;
        for x in v {
            *x *= inv;
        }
    }
}

/// Independent partial sums in [`dot`]: enough to keep the floating-point
/// adders busy (16 lanes: four SSE or NEON registers, two AVX ones) instead
/// of waiting on one running sum.
const LANES: usize = 16;

/// The dot product of `a` and `b` over their common length (the caller
/// checks lengths; [`nearest`] does).
///
/// Sixteen independent accumulators over chunks of sixteen let the compiler
/// vectorise the loop (floating-point addition is not associative, so it
/// keeps a single running sum scalar) and hide the adders' latency; on 1,536
/// dimensions they measured no slower than eight, 32 or 64 (x86-64, SSE2).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        // Fixed-size arrays: no bounds checks left in the loop.
        let (x, y): (&[f32; LANES], &[f32; LANES]) = (x.try_into().unwrap(), y.try_into().unwrap());
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    // Pairwise, for a little less rounding error than a running sum.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc[..2 * width].split_at_mut(width);
        for (l, h) in low.iter_mut().zip(high.iter()) {
            *l += h;
        }
    }
    acc[0] + tail
}

/// The best match [`nearest`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    /// Its position in the set searched (vectors skipped included).
    pub index: usize,
    /// Its cosine similarity with the query (-1 to 1 for unit vectors).
    pub score: f32,
}

/// The vector of `set` most similar to `query`, all unit length (cosine
/// similarity is then [`dot`]). Vectors of another length than the query's
/// (another model's) are skipped, as are NaN scores; ties go to the first.
/// `None` when nothing was comparable.
pub fn nearest<'a>(query: &[f32], set: impl IntoIterator<Item = &'a [f32]>) -> Option<Nearest> {
    let mut best: Option<Nearest> = None;
    for (index, v) in set.into_iter().enumerate() {
        if v.len() != query.len() {
            continue;
        }
        let score = dot(query, v);
        if score.is_nan() {
            continue;
        }
        if best.is_none_or(|b| score > b.score) {
            best = Some(Nearest { index, score });
        }
    }
    best
}

/// Candidates the quantised pass hands to the exact one.
const RERANK: usize = 4;

/// A set of unit vectors of one length, searched in two passes: every vector
/// by an 8-bit copy (a quarter of the bytes, which is what a scan of a few
/// thousand 1,536-dimension vectors is bound by), then the few best again in
/// full precision, whose exact score is the one reported. Quantisation moves
/// a score by about 10⁻³, far less than the gap between the best candidates
/// that [`RERANK`] keeps.
#[derive(Debug, Clone, Default)]
pub struct Index {
    dims: usize,
    /// Every vector's codes, one after another (`dims` each).
    codes: Vec<i8>,
    /// Each vector's scale: component ≈ code × scale.
    scales: Vec<f32>,
    /// The vectors themselves, for the exact pass.
    vectors: Vec<Vec<f32>>,
}

/// `v` as codes of at most ±127 and the scale that brings them back.
fn quantize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// The dot product of two code vectors (exact in `i32` for up to 133,000 dimensions).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 32;
    let mut acc = [0i32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += i32::from(*x) * i32::from(*y);
        }
    }
    acc.iter().sum::<i32>() + tail
}

impl Index {
    /// An empty index of vectors of `dims` components.
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            ..Self::default()
        }
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Adds a unit vector (its position is [`Index::len`] before the call);
    /// false, and nothing added, for one of another length.
    pub fn push(&mut self, v: Vec<f32>) -> bool {
        if v.len() != self.dims {
            return false;
        }
        let scale = quantize(&v, &mut self.codes);
        self.scales.push(scale);
        self.vectors.push(v);
        true
    }

    /// The vector most similar to `query` (cosine: both are unit length) and
    /// its exact score; `None` when empty or `query` is of another length.
    pub fn nearest(&self, query: &[f32]) -> Option<Nearest> {
        if query.len() != self.dims || self.is_empty() {
            return None;
        }
        let mut q = Vec::with_capacity(self.dims);
        let q_scale = quantize(query, &mut q);
        let mut best: [(f32, usize); RERANK] = [(f32::NEG_INFINITY, usize::MAX); RERANK];
        for (i, (codes, scale)) in self
            .codes
            .chunks_exact(self.dims.max(1))
            .zip(&self.scales)
            .enumerate()
        {
            let approx = dot_i8(&q, codes) as f32 * q_scale * scale;
            if approx > best[RERANK - 1].0 {
                best[RERANK - 1] = (approx, i);
                best.sort_by(|a, b| b.0.total_cmp(&a.0));
            }
        }
        best.iter()
            .filter(|(_, i)| *i != usize::MAX)
            .map(|&(_, index)| Nearest {
                index,
                score: dot(query, &self.vectors[index]),
            })
            .filter(|n| !n.score.is_nan())
            .fold(None, |b: Option<Nearest>, n| match b {
                Some(b) if b.score > n.score || (b.score == n.score && b.index < n.index) => {
                    Some(b)
                }
                _ => Some(n),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(mut v: Vec<f32>) -> Vec<f32> {
        normalize(&mut v);
        v
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn normalize_gives_unit_length_and_leaves_zero_alone() {
        let v = unit(vec![3.0, 4.0]);
        assert!(close(v[0], 0.6) && close(v[1], 0.8), "{v:?}");
        let mut zero = vec![0.0; 5];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 5]);
        let mut empty: Vec<f32> = vec![];
        normalize(&mut empty);
        assert!(empty.is_empty());
        // Long enough to go through the chunked loop and its remainder.
        let v = unit((1..=21).map(|i| i as f32).collect());
        let len: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((len - 1.0).abs() < 1e-6, "{len}");
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        // 1*1 + 2*2 + ... + 35*35 = 35*36*71/6 = 14910: two chunks of 16 plus a remainder of 3.
        let a: Vec<f32> = (1..=35).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), 14910.0);
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, -5.0, 6.0]), 12.0);
        assert_eq!(dot(&[], &[]), 0.0);
        // Only the common length counts.
        assert_eq!(dot(&[1.0, 1.0, 5.0], &[2.0, 3.0]), 5.0);
    }

    #[test]
    fn cosine_of_known_vectors() {
        // (1, 2, 2) and (2, 1, -2): 2 + 2 - 4 = 0, orthogonal.
        let a = unit(vec![1.0, 2.0, 2.0]);
        let b = unit(vec![2.0, 1.0, -2.0]);
        assert!(close(dot(&a, &b), 0.0));
        // (1, 0) and (1, 1): cos 45° = 1/sqrt(2).
        let c = unit(vec![1.0, 0.0]);
        let d = unit(vec![1.0, 1.0]);
        assert!(close(dot(&c, &d), std::f32::consts::FRAC_1_SQRT_2));
        // (1, 2, 3) and (4, 5, 6): 32 / (sqrt(14) * sqrt(77)) = 0.974631846...
        let e = unit(vec![1.0, 2.0, 3.0]);
        let f = unit(vec![4.0, 5.0, 6.0]);
        assert!(close(dot(&e, &f), 0.974_631_85), "{}", dot(&e, &f));
        // Identical: 1; opposite: -1.
        assert!(close(dot(&a, &a), 1.0));
        let minus_a: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!(close(dot(&a, &minus_a), -1.0));
    }

    #[test]
    fn nearest_finds_the_best_and_skips_other_lengths() {
        let q = unit(vec![1.0, 0.0, 0.0]);
        let set = [
            unit(vec![0.0, 1.0, 0.0]),      // 0
            unit(vec![1.0, 1.0]),           // another length: skipped
            unit(vec![1.0, 1.0, 0.0]),      // 1/sqrt(2)
            unit(vec![1.0, 2.0, 3.0, 4.0]), // skipped
            unit(vec![-1.0, 0.0, 0.0]),     // -1
        ];
        let best = nearest(&q, set.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(best.index, 2);
        assert!(close(best.score, std::f32::consts::FRAC_1_SQRT_2));
        // Identical wins with 1; ties go to the first.
        let set = [q.clone(), unit(vec![0.0, 0.0, 1.0]), q.clone()];
        let best = nearest(&q, set.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(best.index, 0);
        assert!(close(best.score, 1.0));
        // Nothing comparable.
        assert_eq!(nearest(&q, std::iter::empty()), None);
        let other = [unit(vec![1.0, 0.0])];
        assert_eq!(nearest(&q, other.iter().map(Vec::as_slice)), None);
        assert_eq!(nearest(&q, [[f32::NAN, 0.0, 0.0].as_slice()]), None);
    }

    #[test]
    fn the_index_agrees_with_the_exact_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut random = |n: usize| unit((0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect());
        let set: Vec<Vec<f32>> = (0..500).map(|_| random(384)).collect();
        let mut index = Index::new(384);
        for v in &set {
            assert!(index.push(v.clone()));
        }
        assert!(!index.push(vec![1.0; 3]), "another length is refused");
        assert_eq!(index.len(), 500);
        for _ in 0..50 {
            // Queries near a member (a paraphrase) and far from all (another question).
            let near = unit(
                set[17]
                    .iter()
                    .zip(random(384))
                    .map(|(a, b)| a + 0.3 * b)
                    .collect(),
            );
            for query in [near, random(384)] {
                let exact = nearest(&query, set.iter().map(Vec::as_slice)).unwrap();
                let found = index.nearest(&query).unwrap();
                assert_eq!(found.index, exact.index);
                assert!(close(found.score, exact.score), "{found:?} {exact:?}");
            }
        }
        assert_eq!(Index::new(384).nearest(&random(384)), None);
        assert_eq!(index.nearest(&[1.0, 0.0]), None);
        assert_eq!(dot_i8(&[127; 40], &[-127; 40]), -127 * 127 * 40);
    }
}
