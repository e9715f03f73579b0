//! The loops over the quadrature nodes that take most of a calibration's time:
//! the E-step (each person's posterior, then the expected counts) and the
//! items' cross-product information.
//!
//! Rows over the nodes are padded with zeros to a multiple of [`LANES`], and
//! every loop runs over whole chunks of `LANES` with `LANES` running sums, so
//! the compiler turns them into vector code without a remainder loop. On
//! x86-64 each entry point is compiled twice, for the baseline and for
//! AVX2 + FMA, and the CPU picks at run time. The arithmetic is the same in
//! both (Rust never fuses a multiply and an add on its own), so results do not
//! depend on the CPU.

use std::ops::Range;

use super::Responses;

/// Width of a chunk of nodes: rows are padded to a multiple of it.
pub(super) const LANES: usize = 8;

/// `q` nodes padded to whole chunks.
pub(super) fn padded(q: usize) -> usize {
    q.div_ceil(LANES) * LANES
}

/// A block of persons for the E-step.
pub(super) struct EBlock<'a> {
    /// Person p's rows are `rows[row_start[p]..row_start[p + 1]]`.
    pub row_start: &'a [usize],
    /// Where each used response's row P_ix(θ_·) starts in `table` (and its
    /// expected counts in `partial`).
    pub rows: &'a [u32],
    /// P_ik(θ_q) by item, category and node, rows of `prior.len()`.
    pub table: &'a [f64],
    /// The latent weights at the nodes (zero at the padding).
    pub prior: &'a [f64],
}

/// Posteriors (into `post`, a row per person), marginal log-likelihoods (into
/// `loglik`) and expected counts (added to `partial`) of `persons`.
pub(super) fn e_block(
    e: &EBlock<'_>,
    persons: Range<usize>,
    post: &mut [f64],
    loglik: &mut [f64],
    partial: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `e_block_avx2` is compiled for.
        return unsafe { e_block_avx2(e, persons, post, loglik, partial) };
    }
    e_block_any(e, persons, post, loglik, partial);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn e_block_avx2(
    e: &EBlock<'_>,
    persons: Range<usize>,
    post: &mut [f64],
    loglik: &mut [f64],
    partial: &mut [f64],
) {
    e_block_any(e, persons, post, loglik, partial);
}

#[inline(always)]
fn e_block_any(
    e: &EBlock<'_>,
    persons: Range<usize>,
    post: &mut [f64],
    loglik: &mut [f64],
    partial: &mut [f64],
) {
    // The default grid (41 nodes, rows of 48) with the row length known to the
    // compiler, so that a person's weights can stay in registers.
    match e.prior.len() {
        48 => e_block_rows::<48>(e, persons, post, loglik, partial),
        _ => e_block_rows::<0>(e, persons, post, loglik, partial),
    }
}

/// [`e_block_any`] for rows of `S` (0: of `e.prior.len()`).
#[inline(always)]
fn e_block_rows<const S: usize>(
    e: &EBlock<'_>,
    persons: Range<usize>,
    post: &mut [f64],
    loglik: &mut [f64],
    partial: &mut [f64],
) {
    let stride = if S == 0 { e.prior.len() } else { S };
    for ((p, w), ll) in persons
        .zip(post.chunks_exact_mut(stride))
        .zip(loglik.iter_mut())
    {
        let rows = &e.rows[e.row_start[p]..e.row_start[p + 1]];
        *ll = match posterior::<S>(rows, e.table, e.prior, w) {
            Some(ll) => ll,
            None => posterior_in_logs(rows, e.table, e.prior, w),
        };
        for &r in rows {
            add(&mut partial[r as usize..][..stride], w);
        }
    }
}

/// The posterior over the nodes into `w`, returning the log marginal
/// likelihood; `None` if the products underflow anyway. For rows of `S` (not
/// 0) the weights stay in a local array (registers) until the end.
#[inline(always)]
fn posterior<const S: usize>(
    rows: &[u32],
    table: &[f64],
    prior: &[f64],
    w: &mut [f64],
) -> Option<f64> {
    if S == 0 {
        w.copy_from_slice(prior);
        let (s, exponent) = products(w, rows, table)?;
        scale(w, 1.0 / s);
        return Some(s.ln() + exponent as f64 * std::f64::consts::LN_2);
    }
    let mut acc = [0.0; S];
    acc.copy_from_slice(prior);
    let (s, exponent) = products(&mut acc, rows, table)?;
    let by = 1.0 / s;
    for (x, a) in w.iter_mut().zip(acc) {
        *x = a * by;
    }
    Some(s.ln() + exponent as f64 * std::f64::consts::LN_2)
}

/// Multiplies `acc` (the prior) by the rows, bringing it back near 1 by an
/// exact power of two every 8 rows; its sum at the end and the power of two
/// taken out, or `None` when the products underflow.
#[inline(always)]
fn products(acc: &mut [f64], rows: &[u32], table: &[f64]) -> Option<(f64, i64)> {
    let stride = acc.len();
    let mut exponent = 0_i64;
    for (n, &r) in rows.iter().enumerate() {
        mul(acc, &table[r as usize..][..stride]);
        if n % 8 == 7 {
            let s = sum(acc);
            if s.is_nan() || s < 1e-250 {
                return None;
            }
            // s = m·2^e with 1 ≤ m < 2; multiplying by 2^−e is exact.
            let e = ((s.to_bits() >> 52) & 0x7ff) as i64 - 1023;
            scale(acc, f64::from_bits(((1023 - e) as u64) << 52));
            exponent += e;
        }
    }
    let s = sum(acc);
    (!s.is_nan() && s >= 1e-280).then_some((s, exponent))
}

/// [`posterior`] in log space: for long, very unlikely response patterns.
#[cold]
fn posterior_in_logs(rows: &[u32], table: &[f64], prior: &[f64], w: &mut [f64]) -> f64 {
    let stride = prior.len();
    for (x, &p) in w.iter_mut().zip(prior) {
        *x = p.ln();
    }
    for &r in rows {
        for (x, &p) in w.iter_mut().zip(&table[r as usize..][..stride]) {
            *x += p.ln();
        }
    }
    let m = w.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    if m == f64::NEG_INFINITY {
        // Impossible under the model (a fixed item with P = 0): no information.
        w.copy_from_slice(prior);
        return f64::NEG_INFINITY;
    }
    let mut total = 0.0;
    for x in w.iter_mut() {
        // The padding's ln 0 = −∞ comes back as 0.
        *x = (*x - m).exp();
        total += *x;
    }
    w.iter_mut().for_each(|x| *x /= total);
    m + total.ln()
}

/// Every free item's scores ∂ln P_k(θ_q)/∂ξ_j at the nodes, for the
/// cross-product information.
pub(super) struct Scores<'a> {
    /// Item i's rows (of the stride) start at row `at[i]`, `dim[i]` rows per
    /// category; `usize::MAX` when the item gets no standard errors.
    pub at: &'a [usize],
    pub dim: &'a [usize],
    /// Where item i's dim × dim sums start in `info`.
    pub info_at: &'a [usize],
    pub rows: &'a [f64],
    /// Rows that are all zero (a GRM category depends on two thresholds only).
    pub zero: &'a [bool],
}

/// Adds to `info` (each item's lower triangle) the outer products s sᵀ of
/// each response's score s_j = Σ_q w_q g_jq, where w is the respondent's row
/// of `post` (the rows of `persons`) and g the item's rows for the score.
/// Person by person, so that each posterior is read once.
pub(super) fn cross_products(
    s: &Scores<'_>,
    data: &Responses,
    persons: Range<usize>,
    post: &[f64],
    info: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `cross_products_avx2` is compiled for.
        return unsafe { cross_products_avx2(s, data, persons, post, info) };
    }
    cross_products_any(s, data, persons, post, info, dot);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cross_products_avx2(
    s: &Scores<'_>,
    data: &Responses,
    persons: Range<usize>,
    post: &[f64],
    info: &mut [f64],
) {
    // (A closure inherits the function's target features.)
    cross_products_any(s, data, persons, post, info, |a, b| dot_avx2(a, b));
}

/// [`dot`] in AVX2 vectors: lanes 0–3 and 4–7 of each chunk in two
/// registers, the same sums in the same order (the compiler, left to itself,
/// makes this loop two lanes wide).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::{
        _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };
    let n = a.len().min(b.len()) / LANES * LANES;
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for c in (0..n).step_by(LANES) {
        // SAFETY: c + LANES ≤ n, within both slices.
        unsafe {
            let (pa, pb) = (a.as_ptr().add(c), b.as_ptr().add(c));
            lo = _mm256_add_pd(lo, _mm256_mul_pd(_mm256_loadu_pd(pa), _mm256_loadu_pd(pb)));
            hi = _mm256_add_pd(
                hi,
                _mm256_mul_pd(_mm256_loadu_pd(pa.add(4)), _mm256_loadu_pd(pb.add(4))),
            );
        }
    }
    let mut acc = [0.0; LANES];
    // SAFETY: acc holds 8 doubles.
    unsafe {
        _mm256_storeu_pd(acc.as_mut_ptr(), lo);
        _mm256_storeu_pd(acc.as_mut_ptr().add(4), hi);
    }
    fold(acc)
}

#[inline(always)]
fn cross_products_any(
    s: &Scores<'_>,
    data: &Responses,
    persons: Range<usize>,
    post: &[f64],
    info: &mut [f64],
    dot: impl Fn(&[f64], &[f64]) -> f64,
) {
    let stride = post.len() / persons.len().max(1);
    let mut score = [0.0; super::free::MAX_DIM];
    for (p, w) in persons.zip(post.chunks_exact(stride)) {
        for &(i, x) in data.person(p) {
            let i = i as usize;
            if s.at[i] == usize::MAX {
                continue;
            }
            let dim = s.dim[i];
            let first = s.at[i] + x as usize * dim;
            for (j, sj) in score[..dim].iter_mut().enumerate() {
                *sj = if s.zero[first + j] {
                    0.0
                } else {
                    dot(w, &s.rows[(first + j) * stride..][..stride])
                };
            }
            let info = &mut info[s.info_at[i]..][..dim * dim];
            for a in 0..dim {
                for b in 0..=a {
                    info[a * dim + b] += score[a] * score[b];
                }
            }
        }
    }
}

#[inline(always)]
fn mul(w: &mut [f64], row: &[f64]) {
    for (a, b) in w.chunks_exact_mut(LANES).zip(row.chunks_exact(LANES)) {
        for k in 0..LANES {
            a[k] *= b[k];
        }
    }
}

#[inline(always)]
fn add(acc: &mut [f64], w: &[f64]) {
    for (a, b) in acc.chunks_exact_mut(LANES).zip(w.chunks_exact(LANES)) {
        for k in 0..LANES {
            a[k] += b[k];
        }
    }
}

#[inline(always)]
fn scale(w: &mut [f64], by: f64) {
    for a in w.chunks_exact_mut(LANES) {
        for x in a {
            *x *= by;
        }
    }
}

#[inline(always)]
fn sum(w: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    for c in w.chunks_exact(LANES) {
        for k in 0..LANES {
            acc[k] += c[k];
        }
    }
    fold(acc)
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    fold(acc)
}

/// The lanes' sums added pairwise, in a fixed order.
#[inline(always)]
fn fold(acc: [f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_posterior_matches_the_log_space_one_and_rescales_exactly() {
        // 40 rows of small probabilities: the products alone would underflow.
        let q = 11;
        let stride = padded(q);
        let mut table = vec![0.0; 40 * stride];
        for r in 0..40 {
            for j in 0..q {
                table[r * stride + j] = 1e-9 * (1.0 + ((r * 7 + j * 3) % 5) as f64);
            }
        }
        let rows: Vec<u32> = (0..40).map(|r| (r * stride) as u32).collect();
        let mut prior = vec![0.0; stride];
        prior[..q].fill(1.0 / q as f64);
        let (mut w, mut v) = (vec![0.0; stride], vec![0.0; stride]);
        let ll = posterior::<0>(&rows, &table, &prior, &mut w).expect("rescaled");
        let reference = posterior_in_logs(&rows, &table, &prior, &mut v);
        assert!(
            (ll - reference).abs() < 1e-9 * reference.abs(),
            "{ll} {reference}"
        );
        for (a, b) in w.iter().zip(&v) {
            assert!((a - b).abs() < 1e-12, "{a} {b}");
        }
        assert!(w[q..].iter().all(|&x| x == 0.0));
        // Weights kept in a local array: the same numbers, bit for bit.
        let mut u = vec![0.0; stride];
        assert_eq!(posterior::<16>(&rows, &table, &prior, &mut u), Some(ll));
        assert_eq!(u, w);
        // One impossible row: the products give up, the logs give −∞.
        table[5 * stride..6 * stride].fill(0.0);
        assert_eq!(posterior::<0>(&rows, &table, &prior, &mut w), None);
        assert_eq!(
            posterior_in_logs(&rows, &table, &prior, &mut v),
            f64::NEG_INFINITY
        );
    }

    /// Rust never fuses a multiply and an add unasked, so the AVX2 paths must
    /// give the baseline's numbers bit for bit.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_paths_give_the_baseline_numbers() {
        use rand::{Rng, SeedableRng};
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for stride in [8, 48, 64] {
            let a: Vec<f64> = (0..stride).map(|_| rng.random::<f64>()).collect();
            let b: Vec<f64> = (0..stride).map(|_| rng.random::<f64>() - 0.5).collect();
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let fast = unsafe { dot_avx2(&a, &b) };
            assert_eq!(fast.to_bits(), dot(&a, &b).to_bits());
        }
        // Three persons, 12 rows of a table of 20, rows of 48 (the fixed path)
        // and of 16 (the general one).
        for stride in [48, 16] {
            let table: Vec<f64> = (0..20 * stride)
                .map(|k| {
                    if k % stride < stride - 5 {
                        rng.random::<f64>()
                    } else {
                        0.0
                    }
                })
                .collect();
            let rows: Vec<u32> = (0..12)
                .map(|_| (rng.random_range(0..20) * stride) as u32)
                .collect();
            let mut prior = vec![0.0; stride];
            prior[..stride - 5].fill(1.0 / (stride - 5) as f64);
            let e = EBlock {
                row_start: &[0, 5, 5, 12],
                rows: &rows,
                table: &table,
                prior: &prior,
            };
            let run = |avx2: bool| {
                let (mut post, mut ll, mut partial) =
                    (vec![0.0; 3 * stride], vec![0.0; 3], vec![0.0; table.len()]);
                if avx2 {
                    // SAFETY: as above.
                    unsafe { e_block_avx2(&e, 0..3, &mut post, &mut ll, &mut partial) };
                } else {
                    e_block_any(&e, 0..3, &mut post, &mut ll, &mut partial);
                }
                (post, ll, partial)
            };
            let (fast, slow) = (run(true), run(false));
            assert!(fast.1[0].is_finite() && fast.1[1] == 0.0);
            assert_eq!(fast, slow);
        }
    }
}
