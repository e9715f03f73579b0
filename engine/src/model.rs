//! Item response function of the four-parameter logistic model (4PL) on the
//! logistic metric (D = 1, as catR, mirt and catsim use):
//!
//! P(θ) = c + (d − c) / (1 + exp(−a(θ − b)))
//!
//! Every formula here is written in terms of the logistic s = 1 / (1 + e^(−z)) and its
//! complement 1 − s computed *separately* (never as `1.0 - s`), so that neither
//! P nor 1 − P loses its relative precision in the tails; this is what keeps the
//! information and the likelihood derivatives finite and accurate at extreme θ.

use std::fmt;

/// Most categories a polytomous item may have (scores 0…9).
pub const MAX_CATEGORIES: usize = 10;

/// Validated parameters of one 4PL item: discrimination `a`, difficulty `b`,
/// lower asymptote (guessing) `c` and upper asymptote (slipping) `d`.
///
/// The fields are public for cheap reading; build values with [`ItemParams::new`]
/// so that they are checked. The 1PL/Rasch model is `a = 1, c = 0, d = 1`, the
/// 2PL is `c = 0, d = 1` and the 3PL is `d = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemParams {
    /// Discrimination (slope), finite and > 0.
    pub a: f64,
    /// Difficulty (location on the θ scale), finite.
    pub b: f64,
    /// Lower asymptote (pseudo-guessing), in `[0, d)`.
    pub c: f64,
    /// Upper asymptote (inattention / slipping), in `(c, 1]`.
    pub d: f64,
}

/// Why item parameters were refused by [`ItemParams::new`].
///
/// `Display` gives a human sentence such as `a must be finite and > 0 (got -1)`.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamError {
    /// The discrimination `a` was not finite or not strictly positive.
    InvalidA(f64),
    /// The difficulty `b` was not finite.
    InvalidB(f64),
    /// The lower asymptote `c` was outside `[0, 1)` or NaN.
    InvalidC(f64),
    /// The upper asymptote `d` was outside `(0, 1]` or NaN.
    InvalidD(f64),
    /// The lower asymptote was not strictly below the upper one.
    CNotBelowD {
        /// The lower asymptote that was given.
        c: f64,
        /// The upper asymptote that was given.
        d: f64,
    },
    /// A polytomous item's category count was outside 2 to
    /// [`MAX_CATEGORIES`].
    Categories(usize),
    /// Threshold `k` (1-based) of a polytomous item was not finite.
    InvalidThreshold {
        /// Which threshold, from 1.
        k: usize,
        /// The value that was given.
        value: f64,
    },
    /// Threshold `k` (1-based) of a graded-response item was not above threshold k − 1.
    ThresholdsNotIncreasing {
        /// Which threshold, from 2.
        k: usize,
    },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::InvalidA(a) => write!(f, "a must be finite and > 0 (got {a})"),
            ParamError::InvalidB(b) => write!(f, "b must be finite (got {b})"),
            ParamError::InvalidC(c) => write!(f, "c must be in [0, 1) (got {c})"),
            ParamError::InvalidD(d) => write!(f, "d must be in (0, 1] (got {d})"),
            ParamError::CNotBelowD { c, d } => {
                write!(f, "c must be < d (got c = {c}, d = {d})")
            }
            ParamError::Categories(n) => write!(
                f,
                "a polytomous item has 2 to {} categories, i.e. 1 to {} thresholds (got {n} categor{})",
                MAX_CATEGORIES,
                MAX_CATEGORIES - 1,
                if *n == 1 { "y" } else { "ies" }
            ),
            ParamError::InvalidThreshold { k, value } => {
                write!(f, "threshold b{k} must be finite (got {value})")
            }
            ParamError::ThresholdsNotIncreasing { k } => write!(
                f,
                "graded-response thresholds must be strictly increasing (b{k} is not above b{})",
                k - 1
            ),
        }
    }
}

impl std::error::Error for ParamError {}

impl ItemParams {
    /// Checks and builds item parameters: `a > 0` and finite, `b` finite,
    /// `0 <= c < d <= 1`; otherwise the first violated rule is returned as an error.
    pub fn new(a: f64, b: f64, c: f64, d: f64) -> Result<Self, ParamError> {
        // Written as negated comparisons so that NaN is refused too.
        if !(a.is_finite() && a > 0.0) {
            return Err(ParamError::InvalidA(a));
        }
        if !b.is_finite() {
            return Err(ParamError::InvalidB(b));
        }
        if !((0.0..1.0).contains(&c)) {
            return Err(ParamError::InvalidC(c));
        }
        if !(d > 0.0 && d <= 1.0) {
            return Err(ParamError::InvalidD(d));
        }
        if c >= d {
            return Err(ParamError::CNotBelowD { c, d });
        }
        Ok(ItemParams { a, b, c, d })
    }

    /// Probability of a correct answer at ability `theta`; always within `[c, d]`.
    pub fn probability(&self, theta: f64) -> f64 {
        probability(self.a, self.b, self.c, self.d, theta)
    }

    /// Exact 4PL Fisher information at `theta` (Magis 2013, eq. 2):
    /// I(θ) = a² (P − c)² (d − P)² / ((d − c)² P (1 − P)); finite and `>= 0`.
    ///
    /// For the 2PL (`c = 0, d = 1`) this reduces to a² P (1 − P).
    pub fn information(&self, theta: f64) -> f64 {
        information(self.a, self.b, self.c, self.d, theta)
    }

    /// The same item on the normal-ogive-like metric with scaling constant `scale`
    /// (D, e.g. 1.702): P = c + (d − c) / (1 + exp(−D·a(θ − b))) is the D = 1 model
    /// with discrimination D·a, which is what this returns. Parameters calibrated
    /// with D = 1.702 (as in BILOG and many published banks) are read this way.
    pub fn scaled(self, scale: f64) -> Result<Self, ParamError> {
        ItemParams::new(self.a * scale, self.b, self.c, self.d)
    }
}

/// The logistic s = 1 / (1 + e^(−z)) and its complement 1 − s, both computed
/// without cancellation (one `exp` of a non-positive argument, so no overflow).
#[inline]
pub(crate) fn logistic_pair(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let q = 1.0 / (1.0 + e);
    if z >= 0.0 { (q, e * q) } else { (e * q, q) }
}

/// 4PL probability of a correct answer, clamped into `[c, d]` against rounding.
#[inline]
pub(crate) fn probability(a: f64, b: f64, c: f64, d: f64, theta: f64) -> f64 {
    let (s, t) = logistic_pair(a * (theta - b));
    // Measured from the nearer asymptote, so that P reaches c and d exactly in the tails.
    let p = if s <= 0.5 {
        c + (d - c) * s
    } else {
        d - (d - c) * t
    };
    // max/min rather than clamp: clamp panics on NaN or inverted bounds, and the
    // fields are public, so unchecked values can reach us.
    p.max(c).min(d)
}

/// 4PL Fisher information (Magis 2013).
///
/// With P − c = (d − c)s and d − P = (d − c)(1 − s) the formula becomes
/// a² (d − c)² g · g / (P Q) with g = s(1 − s) and Q = 1 − P. Since P ≥ (d − c)s and
/// Q ≥ (d − c)(1 − s), the ratio g / (P Q) is bounded by 1 / (d − c)², so nothing
/// blows up in the tails and the result never exceeds a² g ≤ a² / 4.
#[inline]
pub(crate) fn information(a: f64, b: f64, c: f64, d: f64, theta: f64) -> f64 {
    let (s, t) = logistic_pair(a * (theta - b));
    information_at(a, c, d, s, t)
}

/// The information given the logistic `s` and its complement `t` (see above).
#[inline]
fn information_at(a: f64, c: f64, d: f64, s: f64, t: f64) -> f64 {
    let g = s * t;
    // `!(g > 0.0)` also catches NaN from unchecked parameters.
    if g.is_nan() || g <= 0.0 {
        return 0.0;
    }
    let span = d - c;
    let p = c + span * s;
    let q = (1.0 - d) + span * t;
    let pq = p * q;
    if pq.is_nan() || pq <= 0.0 {
        return 0.0;
    }
    let info = (a * a) * (span * span) * g * (g / pq);
    if info.is_nan() {
        0.0
    } else {
        // An absurdly large `a` (valid, as only finiteness is required) can overflow.
        info.clamp(0.0, f64::MAX)
    }
}

/// What Warm's (1989) estimating equation needs from one answer at θ, from one
/// `exp`: the score l′ (as in [`loglik_derivs`]), the Fisher information I and
/// J = P′P″ / (P(1 − P)). With P′ = a(d − c)s(1 − s) and P″ = P′·a(1 − 2s),
/// J = a(1 − 2s)·I.
#[inline]
pub(crate) fn warm_terms(
    a: f64,
    b: f64,
    c: f64,
    d: f64,
    theta: f64,
    correct: bool,
) -> (f64, f64, f64) {
    let (s, t) = logistic_pair(a * (theta - b));
    let span = d - c;
    let p = c + span * s;
    let q = (1.0 - d) + span * t;
    let score = if correct {
        a * t * if p > 0.0 { span * s / p } else { 1.0 }
    } else {
        -a * s * if q > 0.0 { span * t / q } else { 1.0 }
    };
    let info = information_at(a, c, d, s, t);
    (score, info, a * (t - s) * info)
}

/// First and second derivatives, with respect to θ, of the log-likelihood of one
/// answer (`correct` or not) to a 4PL item.
///
/// From l = u ln P + (1 − u) ln(1 − P), P′ = a(d − c)s(1 − s) and
/// P″ = a²(d − c)s(1 − s)(1 − 2s), with α = (d − c)s / P and β = (d − c)(1 − s) / (1 − P)
/// (both in `[0, 1]`):
/// - correct: l′ = a(1 − s)α,  l″ = a²(1 − s)α[(1 − 2s) − (1 − s)α]
/// - wrong:   l′ = −a s β,    l″ = −a² s β[(1 − 2s) + s β]
///
/// For the 2PL (α = β = 1) both give l″ = −a² s(1 − s), the familiar result.
#[inline]
pub(crate) fn loglik_derivs(
    a: f64,
    b: f64,
    c: f64,
    d: f64,
    theta: f64,
    correct: bool,
) -> (f64, f64) {
    let (s, t) = logistic_pair(a * (theta - b));
    let span = d - c;
    if correct {
        let p = c + span * s;
        // P = 0 only when c = 0 and s underflowed, where the limit of α is 1.
        let alpha = if p > 0.0 { span * s / p } else { 1.0 };
        let l1 = a * t * alpha;
        let l2 = l1 * a * ((t - s) - t * alpha);
        (l1, l2)
    } else {
        let q = (1.0 - d) + span * t;
        let beta = if q > 0.0 { span * t / q } else { 1.0 };
        let l1 = -a * s * beta;
        let l2 = l1 * a * ((t - s) + s * beta);
        (l1, l2)
    }
}

/// ln(1 + e^x) without overflow.
#[inline]
pub(crate) fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// One answer's likelihood factor in the form `base + span / (1 + e^(k (θ − b)))`:
/// for a correct answer it is P (base c, k = −a); for a wrong one 1 − P
/// (base 1 − d, k = +a). Writing both the same way makes grid loops branch-free.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Factor {
    pub(crate) base: f64,
    pub(crate) span: f64,
    pub(crate) k: f64,
    pub(crate) b: f64,
}

impl Factor {
    #[inline]
    pub(crate) fn new(a: f64, b: f64, c: f64, d: f64, correct: bool) -> Factor {
        if correct {
            Factor {
                base: c,
                span: d - c,
                k: -a,
                b,
            }
        } else {
            Factor {
                base: 1.0 - d,
                span: d - c,
                k: a,
                b,
            }
        }
    }

    /// The likelihood factor at θ (exp overflowing to +inf correctly gives `base`).
    #[inline]
    pub(crate) fn value(&self, theta: f64) -> f64 {
        self.base + self.span / (1.0 + (self.k * (theta - self.b)).exp())
    }

    /// Its natural logarithm, finite even where `value` underflows to 0.
    #[inline]
    pub(crate) fn ln_value(&self, theta: f64) -> f64 {
        // The clamp keeps ±inf (huge `a`) out of the sums; ±1e15 is far beyond
        // any difference that matters and leaves room to add a million terms.
        let x = (self.k * (theta - self.b)).clamp(-1e15, 1e15);
        if self.base > 0.0 {
            // ≥ ln(base): no underflow to −inf possible.
            (self.base + self.span / (1.0 + x.exp())).ln()
        } else {
            self.span.ln() - softplus(x)
        }
    }
}

/// Multiplies `post[j]` by one answer's likelihood factor at θ_j = `lo + j·step`
/// and returns the new maximum of `post`.
///
/// On an evenly spaced grid e^(k(θ_j − b)) is a geometric sequence, so two or three
/// `exp` per item replace one per node. The sequence is walked outwards from the
/// node nearest to b: |k(θ − b)| only grows along the way, so once a term saturates
/// (overflow to +inf or underflow to 0) it stays at the correct limit. Accumulated
/// rounding is at most ~n ulp. If k·step itself is extreme, fall back to one
/// `exp` per node.
#[inline]
pub(crate) fn multiply_factor(post: &mut [f64], lo: f64, step: f64, f: &Factor) -> f64 {
    let n = post.len();
    let ratio = (f.k * step).exp();
    let back = (-f.k * step).exp();
    let mut max = 0.0f64;
    if !(ratio.is_finite() && back.is_finite() && ratio > 0.0 && back > 0.0) {
        for (j, p) in post.iter_mut().enumerate() {
            *p *= f.value(lo + j as f64 * step);
            max = max.max(*p);
        }
        return max;
    }
    // Usual case: one pass from the first node, four independent chains of
    // e_j = e_0·ratio^j (so the multiplications pipeline and vectorise), as long
    // as every e_j stays well inside the normal range (|exponent| ≤ 600).
    let hi = lo + (n - 1) as f64 * step;
    if f.k.abs() * (lo - f.b).abs().max((hi - f.b).abs()) <= 600.0 {
        let e0 = (f.k * (lo - f.b)).exp();
        let r2 = ratio * ratio;
        let r4 = r2 * r2;
        let mut e = [e0, e0 * ratio, e0 * r2, e0 * r2 * ratio];
        let mut m = [0.0f64; 4];
        let mut chunks = post.chunks_exact_mut(4);
        for chunk in &mut chunks {
            for l in 0..4 {
                chunk[l] *= f.base + f.span / (1.0 + e[l]);
                m[l] = m[l].max(chunk[l]);
                e[l] *= r4;
            }
        }
        for (l, p) in chunks.into_remainder().iter_mut().enumerate() {
            *p *= f.base + f.span / (1.0 + e[l]);
            m[l] = m[l].max(*p);
        }
        return m[0].max(m[1]).max(m[2].max(m[3]));
    }
    // Extreme discrimination: start from the node nearest b, where e ≈ 1, and
    // walk outwards in both directions.
    let pos = ((f.b - lo) / step).round();
    // `as` saturates (NaN → 0), and the min keeps the index in range.
    let jc = if pos > 0.0 {
        (pos as usize).min(n - 1)
    } else {
        0
    };
    let ec = (f.k * (lo + jc as f64 * step - f.b)).exp();
    let mut e = ec;
    for p in &mut post[jc..] {
        *p *= f.base + f.span / (1.0 + e);
        max = max.max(*p);
        e *= ratio;
    }
    let mut e = ec * back;
    for p in post[..jc].iter_mut().rev() {
        *p *= f.base + f.span / (1.0 + e);
        max = max.max(*p);
        e *= back;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_accepts_valid_and_refuses_invalid() {
        assert!(ItemParams::new(1.0, 0.0, 0.0, 1.0).is_ok());
        assert!(ItemParams::new(0.5, -3.0, 0.25, 0.9).is_ok());
        assert_eq!(
            ItemParams::new(-1.0, 0.0, 0.0, 1.0),
            Err(ParamError::InvalidA(-1.0))
        );
        assert_eq!(
            ItemParams::new(0.0, 0.0, 0.0, 1.0),
            Err(ParamError::InvalidA(0.0))
        );
        assert!(matches!(
            ItemParams::new(f64::NAN, 0.0, 0.0, 1.0),
            Err(ParamError::InvalidA(_))
        ));
        assert!(matches!(
            ItemParams::new(f64::INFINITY, 0.0, 0.0, 1.0),
            Err(ParamError::InvalidA(_))
        ));
        assert!(matches!(
            ItemParams::new(1.0, f64::NAN, 0.0, 1.0),
            Err(ParamError::InvalidB(_))
        ));
        assert_eq!(
            ItemParams::new(1.0, 0.0, -0.1, 1.0),
            Err(ParamError::InvalidC(-0.1))
        );
        assert_eq!(
            ItemParams::new(1.0, 0.0, 1.0, 1.0),
            Err(ParamError::InvalidC(1.0))
        );
        assert_eq!(
            ItemParams::new(1.0, 0.0, 0.0, 1.5),
            Err(ParamError::InvalidD(1.5))
        );
        assert_eq!(
            ItemParams::new(1.0, 0.0, 0.0, 0.0),
            Err(ParamError::InvalidD(0.0))
        );
        assert_eq!(
            ItemParams::new(1.0, 0.0, 0.6, 0.5),
            Err(ParamError::CNotBelowD { c: 0.6, d: 0.5 })
        );
    }

    #[test]
    fn error_messages_are_sentences() {
        assert_eq!(
            ParamError::InvalidA(-1.0).to_string(),
            "a must be finite and > 0 (got -1)"
        );
        assert_eq!(
            ParamError::InvalidB(f64::NAN).to_string(),
            "b must be finite (got NaN)"
        );
        assert_eq!(
            ParamError::CNotBelowD { c: 0.6, d: 0.5 }.to_string(),
            "c must be < d (got c = 0.6, d = 0.5)"
        );
        let e: Box<dyn std::error::Error> = Box::new(ParamError::InvalidC(2.0));
        assert_eq!(e.to_string(), "c must be in [0, 1) (got 2)");
    }

    #[test]
    fn probability_known_values() {
        let rasch = ItemParams::new(1.0, 0.0, 0.0, 1.0).unwrap();
        assert_eq!(rasch.probability(0.0), 0.5);
        assert!((rasch.probability(1.0) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
        let item = ItemParams::new(1.5, 0.5, 0.2, 0.9).unwrap();
        // At θ = b the 4PL sits halfway between its asymptotes.
        assert!((item.probability(0.5) - 0.55).abs() < 1e-15);
        assert_eq!(item.probability(1e6), 0.9);
        assert_eq!(item.probability(-1e6), 0.2);
    }

    #[test]
    fn information_known_values() {
        // 2PL at θ = b: a²/4.
        let item = ItemParams::new(2.0, 1.0, 0.0, 1.0).unwrap();
        assert!((item.information(1.0) - 1.0).abs() < 1e-15);
        // 3PL (Birnbaum): I = a² (1 − P)/P · ((P − c)/(1 − c))², checked at θ = b.
        let item = ItemParams::new(1.2, 0.0, 0.2, 1.0).unwrap();
        let p = item.probability(0.0);
        let expected = 1.44 * (1.0 - p) / p * ((p - 0.2) / 0.8).powi(2);
        assert!((item.information(0.0) - expected).abs() < 1e-14);
        // Tails: tiny but non-negative and finite, never NaN.
        assert_eq!(item.information(-1e308), 0.0);
        assert_eq!(item.information(1e308), 0.0);
        let huge = ItemParams::new(1e200, 0.0, 0.1, 0.9).unwrap();
        assert!(huge.information(0.0).is_finite());
    }

    #[test]
    fn loglik_derivs_match_finite_differences() {
        let items = [
            (1.3, -0.4, 0.0, 1.0),
            (0.8, 0.7, 0.2, 1.0),
            (1.7, 0.1, 0.15, 0.85),
        ];
        for &(a, b, c, d) in &items {
            for &u in &[true, false] {
                for &th in &[-3.0, -0.5, 0.0, 0.9, 2.5] {
                    let l = |t: f64| {
                        let p = probability(a, b, c, d, t);
                        if u { p.ln() } else { (1.0 - p).ln() }
                    };
                    let h = 1e-5;
                    let num1 = (l(th + h) - l(th - h)) / (2.0 * h);
                    let num2 = (l(th + h) - 2.0 * l(th) + l(th - h)) / (h * h);
                    let (l1, l2) = loglik_derivs(a, b, c, d, th, u);
                    assert!((l1 - num1).abs() < 1e-7, "l1 {l1} vs {num1}");
                    assert!((l2 - num2).abs() < 1e-4, "l2 {l2} vs {num2}");
                }
            }
        }
    }

    #[test]
    fn factor_matches_probability() {
        let (a, b, c, d) = (1.1, 0.3, 0.2, 0.95);
        for &th in &[-4.0, 0.0, 0.3, 5.0] {
            let p = probability(a, b, c, d, th);
            let right = Factor::new(a, b, c, d, true);
            let wrong = Factor::new(a, b, c, d, false);
            assert!((right.value(th) - p).abs() < 1e-15);
            assert!((wrong.value(th) - (1.0 - p)).abs() < 1e-15);
            assert!((right.ln_value(th) - p.ln()).abs() < 1e-13);
            assert!((wrong.ln_value(th) - (1.0 - p).ln()).abs() < 1e-13);
        }
        // Where the value underflows, the logarithm is still finite.
        let f = Factor::new(5.0, 200.0, 0.0, 1.0, true);
        assert_eq!(f.value(-6.0), 0.0);
        assert!((f.ln_value(-6.0) - (-5.0 * 206.0)).abs() < 1e-9);
    }

    fn params() -> impl Strategy<Value = ItemParams> {
        (0.05f64..4.0, -5.0f64..5.0, 0.0f64..0.5, 0.0f64..0.5).prop_map(|(a, b, c, gap)| {
            let d = (c + 0.01 + gap).min(1.0);
            ItemParams::new(a, b, c, d).unwrap()
        })
    }

    proptest! {
        #[test]
        fn probability_within_asymptotes(item in params(), theta in -10.0f64..10.0) {
            let p = item.probability(theta);
            prop_assert!(p >= item.c && p <= item.d, "p = {p}, item = {item:?}");
        }

        #[test]
        fn information_nonnegative_and_finite(item in params(), theta in -10.0f64..10.0) {
            let i = item.information(theta);
            prop_assert!(i.is_finite() && i >= 0.0, "i = {i}");
            // Never above the 2PL information with the same a and b.
            let two = ItemParams { c: 0.0, d: 1.0, ..item };
            prop_assert!(i <= two.information(theta) * (1.0 + 1e-12) + 1e-300);
        }

        #[test]
        fn two_pl_information_is_a2_p_q(a in 0.05f64..4.0, b in -5.0f64..5.0, theta in -10.0f64..10.0) {
            let item = ItemParams::new(a, b, 0.0, 1.0).unwrap();
            let p = item.probability(theta);
            let expected = a * a * p * (1.0 - p);
            let got = item.information(theta);
            // 1 − p cancels when p ≈ 1: allow its rounding error (a²·ulp), no more.
            prop_assert!((got - expected).abs() <= 1e-12 * expected + 2.5e-16 * a * a,
                "got {got}, expected {expected}");
        }

        #[test]
        fn information_matches_generic_formula(item in params(), theta in -4.0f64..4.0) {
            let p = item.probability(theta);
            let (a, c, d) = (item.a, item.c, item.d);
            let expected = a * a * (p - c).powi(2) * (d - p).powi(2) / ((d - c).powi(2) * p * (1.0 - p));
            let got = item.information(theta);
            prop_assert!((got - expected).abs() <= 1e-9 * expected + 1e-12, "got {got}, expected {expected}");
        }

        #[test]
        fn warm_terms_agree_with_their_definitions(item in params(), theta in -6.0f64..6.0, correct in any::<bool>()) {
            let (a, b, c, d) = (item.a, item.b, item.c, item.d);
            let (score, info, j) = warm_terms(a, b, c, d, theta, correct);
            prop_assert_eq!(score, loglik_derivs(a, b, c, d, theta, correct).0);
            prop_assert!((info - item.information(theta)).abs() <= 1e-15 * info.max(1.0));
            // J = P′P″ / (PQ) by finite differences of P.
            let h = 1e-5;
            let p = |x: f64| item.probability(x);
            let (p1, p2) = ((p(theta + h) - p(theta - h)) / (2.0 * h), (p(theta + h) - 2.0 * p(theta) + p(theta - h)) / (h * h));
            let pq = p(theta) * (1.0 - p(theta));
            if pq > 1e-6 {
                let want = p1 * p2 / pq;
                prop_assert!((j - want).abs() < 1e-4 * (1.0 + want.abs()), "J {} vs {}", j, want);
            }
        }
    }
}
