//! Polytomous items (scores 0…m) on the logistic metric (D = 1):
//!
//! - graded response model (GRM, Samejima 1969): thresholds b₁ < … < b_m,
//!   P*(X ≥ k) = s_k = 1 / (1 + e^(−a(θ − b_k))), P(X = k) = s_k − s_{k+1},
//!   with s₀ = 1 and s_{m+1} = 0;
//! - generalized partial credit model (GPCM, Muraki 1992): steps b₁ … b_m (in
//!   any order), P(X = k) ∝ exp(Σ_{v ≤ k} a(θ − b_v)), the empty sum for k = 0;
//! - partial credit model (PCM, Masters 1982): the GPCM with a = 1.
//!
//! Every quantity here is written so that it keeps its relative precision in the
//! tails, as the dichotomous model does (see [`crate::model`]):
//!
//! - GRM: with t_k = 1 − s_k computed separately, s_k − s_{k+1} equals
//!   s_k · t_{k+1} · (1 − e^(−a(b_{k+1} − b_k))) exactly (the ratio
//!   t_k s_{k+1} / (s_k t_{k+1}) is e^(−a(b_{k+1} − b_k))), a product with no
//!   cancellation. The score is l′ = a(t_k − s_{k+1}), the second derivative
//!   l″ = −a²(s_k t_k + s_{k+1} t_{k+1}) ≤ 0 (the GRM likelihood is log-concave),
//!   the information I = a² Σ_k P_k (t_k − s_{k+1})² and Warm's
//!   J = Σ P′P″/P = a³ Σ_k P_k g_k (g_k² − s_k t_k − s_{k+1} t_{k+1}),
//!   g_k = t_k − s_{k+1}.
//! - GPCM: the category probabilities come from a log-sum-exp (no overflow),
//!   and with μ, σ² and μ₃ the mean, variance and third central moment of the
//!   score, l′ = a(k − μ), l″ = −a²σ² ≤ 0, I = a²σ², J = a³μ₃.

use std::fmt;

use super::model::{ParamError, logistic_pair, softplus};

pub use super::model::MAX_CATEGORIES;

/// The polytomous models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolyModel {
    /// Samejima's graded response model: ordered thresholds.
    Grm,
    /// Muraki's generalized partial credit model: step parameters.
    Gpcm,
    /// Masters' partial credit model: the GPCM with a = 1.
    Pcm,
}

impl PolyModel {
    /// The lowercase name (`grm`, `gpcm`, `pcm`).
    pub fn name(self) -> &'static str {
        match self {
            PolyModel::Grm => "grm",
            PolyModel::Gpcm => "gpcm",
            PolyModel::Pcm => "pcm",
        }
    }
}

impl fmt::Display for PolyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Validated parameters of one polytomous item: its model, discrimination `a`
/// (1 for the PCM) and its m = categories − 1 thresholds (GRM) or steps
/// (GPCM/PCM). Build it with [`PolyParams::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolyParams {
    model: PolyModel,
    a: f64,
    b: Vec<f64>,
}

impl PolyParams {
    /// Checks and builds an item: `a` finite and > 0 (and exactly 1 for the PCM),
    /// 1 to 9 finite thresholds (2 to [`MAX_CATEGORIES`] categories), strictly
    /// increasing for the GRM.
    pub fn new(model: PolyModel, a: f64, b: Vec<f64>) -> Result<PolyParams, ParamError> {
        if !(a.is_finite() && a > 0.0) || (model == PolyModel::Pcm && a != 1.0) {
            return Err(ParamError::InvalidA(a));
        }
        let categories = b.len() + 1;
        if !(2..=MAX_CATEGORIES).contains(&categories) {
            return Err(ParamError::Categories(categories));
        }
        if let Some(k) = b.iter().position(|x| !x.is_finite()) {
            return Err(ParamError::InvalidThreshold {
                k: k + 1,
                value: b[k],
            });
        }
        if model == PolyModel::Grm
            && let Some(k) = b.windows(2).position(|w| w[1] <= w[0])
        {
            return Err(ParamError::ThresholdsNotIncreasing { k: k + 2 });
        }
        Ok(PolyParams { model, a, b })
    }

    /// The model.
    pub fn model(&self) -> PolyModel {
        self.model
    }

    /// Discrimination.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// Thresholds (GRM) or steps (GPCM, PCM), b₁ … b_m.
    pub fn thresholds(&self) -> &[f64] {
        &self.b
    }

    /// Number of categories, m + 1 (scores 0…m).
    pub fn categories(&self) -> usize {
        self.b.len() + 1
    }

    /// The same item with discrimination multiplied by the scaling constant D
    /// (see [`crate::ItemParams::scaled`]); a PCM item becomes a GPCM item with
    /// a = D, since the PCM fixes a = 1.
    pub fn scaled(self, scale: f64) -> Result<PolyParams, ParamError> {
        let model = match self.model {
            PolyModel::Pcm if scale != 1.0 => PolyModel::Gpcm,
            m => m,
        };
        PolyParams::new(model, self.a * scale, self.b)
    }

    /// P(X = k | θ) for k = 0…m, written into `out[..=m]`.
    ///
    /// # Panics
    /// If `out` is shorter than [`PolyParams::categories`].
    pub fn probabilities(&self, theta: f64, out: &mut [f64]) {
        let out = &mut out[..self.categories()];
        let gap = gaps(self.model, self.a, &self.b);
        let item = self.view(&gap);
        for (k, p) in out.iter_mut().enumerate() {
            *p = item.ln_probability(k, theta).exp();
        }
    }

    /// Fisher information at θ: finite and ≥ 0.
    pub fn information(&self, theta: f64) -> f64 {
        let gap = gaps(self.model, self.a, &self.b);
        self.view(&gap).information(theta)
    }

    fn view<'a>(&'a self, gap: &'a [f64]) -> Poly<'a> {
        Poly {
            kind: Kind::of(self.model),
            a: self.a,
            b: &self.b,
            gap,
        }
    }
}

/// The GRM's category gaps, gap_k = 1 − e^(−a(b_{k+1} − b_k)) for k = 0…m − 1
/// (1 where the formula has none: k = 0, and every slot for the partial credit
/// models), so that P_k = s_k · t_{k+1} · gap_k. They depend on the item only,
/// and are its one `expm1` per category: banks compute them once.
pub(crate) fn gaps(model: PolyModel, a: f64, b: &[f64]) -> [f64; MAX_CATEGORIES] {
    let mut out = [1.0; MAX_CATEGORIES];
    if model == PolyModel::Grm {
        for k in 1..b.len() {
            out[k] = -(-a * (b[k] - b[k - 1])).exp_m1();
        }
    }
    out
}

/// One polytomous item as the hot loops read it: its arithmetic, a, thresholds
/// and precomputed gaps (see [`gaps`]), borrowed from a bank's columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Poly<'a> {
    pub(crate) kind: Kind,
    pub(crate) a: f64,
    pub(crate) b: &'a [f64],
    pub(crate) gap: &'a [f64],
}

/// The two kinds of polytomous arithmetic (the PCM is a GPCM with a = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Graded,
    PartialCredit,
}

impl Kind {
    pub(crate) fn of(model: PolyModel) -> Kind {
        match model {
            PolyModel::Grm => Kind::Graded,
            PolyModel::Gpcm | PolyModel::Pcm => Kind::PartialCredit,
        }
    }
}

impl Poly<'_> {
    /// ln P(X = k | θ), finite for every θ (−inf only if k > m).
    #[inline]
    pub(crate) fn ln_probability(&self, k: usize, theta: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        match self.kind {
            Kind::Graded => grm_ln_probability(a, b, self.gap, k, theta),
            Kind::PartialCredit => {
                let mut z = [0.0; MAX_CATEGORIES];
                let (max, ln_total) = gpcm_logits(a, b, theta, &mut z);
                z[k] - max - ln_total
            }
        }
    }

    /// Score l′ and second derivative l″ of ln P(X = k | θ).
    #[inline]
    pub(crate) fn loglik_derivs(&self, k: usize, theta: f64) -> (f64, f64) {
        let (a, b) = (self.a, self.b);
        match self.kind {
            Kind::Graded => {
                let (sk, tk) = grm_boundary(a, b, k, theta);
                let (s1, t1) = grm_boundary(a, b, k + 1, theta);
                (a * (tk - s1), -a * a * (sk * tk + s1 * t1))
            }
            Kind::PartialCredit => {
                let (mu, var, _) = gpcm_moments(a, b, theta);
                (a * (k as f64 - mu), -a * a * var)
            }
        }
    }

    /// Fisher information of the item at θ.
    #[inline]
    pub(crate) fn information(&self, theta: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        let info = match self.kind {
            Kind::Graded => {
                let mut sum = 0.0;
                grm_each_category(a, b, self.gap, theta, |p, g, _| sum += p * g * g);
                a * a * sum
            }
            Kind::PartialCredit => a * a * gpcm_moments(a, b, theta).1,
        };
        if info.is_nan() { 0.0 } else { info.max(0.0) }
    }

    /// Warm's terms for an answer in category k: (l′, I, J) with
    /// J = Σ_c P_c′ P_c″ / P_c (see the module notes).
    #[inline]
    pub(crate) fn warm_terms(&self, k: usize, theta: f64) -> (f64, f64, f64) {
        let (a, b) = (self.a, self.b);
        match self.kind {
            Kind::Graded => {
                let (mut info, mut j) = (0.0, 0.0);
                grm_each_category(a, b, self.gap, theta, |p, g, w| {
                    info += p * g * g;
                    j += p * g * (g * g - w);
                });
                let score = self.loglik_derivs(k, theta).0;
                (score, a * a * info, a * a * a * j)
            }
            Kind::PartialCredit => {
                let (mu, var, mu3) = gpcm_moments(a, b, theta);
                (a * (k as f64 - mu), a * a * var, a * a * a * mu3)
            }
        }
    }

    /// A second bound, for the GRM, from the threshold nearest θ:
    /// I(θ) ≤ e^(ln_near_bound − a·δ) with δ = min_k |θ − b_k|; `None` for the
    /// partial credit models.
    ///
    /// The GRM information never exceeds the sum of its m boundary curves,
    /// I ≤ a² Σ_k s_k t_k. With u_k = 1 − 2s_k (u₀ = −1 ≤ u₁ ≤ … ≤ u_{m+1} = 1),
    /// I/a² = Σ_k P_k g_k² = Σ_{k=0}^{m} (u_{k+1} − u_k)(u_k + u_{k+1})²/8 and
    /// s_k t_k = (1 − u_k²)/4. For m = 1 both sides are (1 − u₁²)/4 (the 2PL).
    /// Inserting a threshold v between p and q adds (q − p)(v − p)(q − v)/8 to
    /// the left side and (1 − v²)/4 to the right, and
    /// (q − p)(v − p)(q − v) ≤ 2(1 + v)(1 − v) since −1 ≤ p and q ≤ 1. So the
    /// inequality holds for every m by induction, and with s_k t_k ≤ e^(−a|θ − b_k|),
    /// I ≤ m·a²·e^(−a·min_k |θ − b_k|): ln(m a²).
    pub(crate) fn ln_near_bound(&self) -> Option<f64> {
        (self.kind == Kind::Graded).then(|| (self.b.len() as f64 * self.a * self.a).ln())
    }

    /// The distance from θ to the nearest threshold.
    #[inline]
    pub(crate) fn nearest(&self, theta: f64) -> f64 {
        self.b
            .iter()
            .fold(f64::INFINITY, |d, &x| d.min((theta - x).abs()))
    }

    /// An upper bound of the information at distance δ from the thresholds:
    /// I(θ) ≤ e^(ln_bound − a·δ) with δ = max(0, lo − θ, θ − hi), where lo and hi
    /// are the smallest and largest threshold. Returns ln_bound.
    ///
    /// GRM: below b₁, P(X ≥ 1) = s₁ ≤ e^(−aδ) and |g| ≤ 1, so
    /// I ≤ a²(s₁² t₁ + s₁) ≤ 2a² e^(−aδ); above b_m likewise with t_m; inside,
    /// I ≤ a² Σ P_k g_k² ≤ a². Hence ln(2a²).
    /// GPCM: below every step, P_h ≤ e^(−h·aδ), so I = a² Var X ≤ a² E[X²]
    /// ≤ a² e^(−aδ) Σ h²; above, the same for m − X; inside, a² m²/4 ≤ a² Σ h².
    pub(crate) fn ln_bound(&self) -> f64 {
        let (a, m) = (self.a, self.b.len());
        let factor = match self.kind {
            Kind::Graded => 2.0,
            Kind::PartialCredit => (m * (m + 1) * (2 * m + 1)) as f64 / 6.0,
        };
        (a * a * factor).ln()
    }

    /// Multiplies `post[j]` by P(X = k | θ_j) at θ_j = lo + j·step and returns
    /// the new maximum of `post`.
    ///
    /// Along an even grid every exponential in the formulas is a geometric
    /// sequence, so the usual case costs one `exp` per chain, not per node:
    /// GRM, P_k = E_k / ((1 + u_j)(1 + v_j)) with u = e^(−a(θ − b_k)) and
    /// v = e^(a(θ − b_{k+1})) (each absent at its end of the scale);
    /// GPCM, P_k = 1 / Σ_h e^(z_h − z_k), each term a chain. When an exponent
    /// could leave ±600 somewhere on the grid, each node is computed in log
    /// space instead.
    pub(crate) fn multiply_grid(&self, k: usize, post: &mut [f64], lo: f64, step: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        let n = post.len();
        let hi = lo + (n.max(1) - 1) as f64 * step;
        let mut max = 0.0f64;
        let reach = |x: f64| a * (lo - x).abs().max((hi - x).abs());
        match self.kind {
            Kind::Graded => {
                let m = b.len();
                let below = (k >= 1).then(|| b[k - 1]);
                let above = (k < m).then(|| b[k]);
                if below.is_none_or(|x| reach(x) <= 600.0)
                    && above.is_none_or(|x| reach(x) <= 600.0)
                {
                    let gap = if k == m { 1.0 } else { self.gap[k] };
                    let (u0, ru) =
                        below.map_or((0.0, 1.0), |x| ((-a * (lo - x)).exp(), (-a * step).exp()));
                    let (v0, rv) =
                        above.map_or((0.0, 1.0), |y| ((a * (lo - y)).exp(), (a * step).exp()));
                    // Four independent chains, as in `multiply_factor`, so that the
                    // multiplications pipeline and the loop vectorises.
                    let (ru2, rv2) = (ru * ru, rv * rv);
                    let (ru4, rv4) = (ru2 * ru2, rv2 * rv2);
                    let mut u = [u0, u0 * ru, u0 * ru2, u0 * ru2 * ru];
                    let mut v = [v0, v0 * rv, v0 * rv2, v0 * rv2 * rv];
                    let mut m = [0.0f64; 4];
                    let mut chunks = post.chunks_exact_mut(4);
                    for chunk in &mut chunks {
                        for l in 0..4 {
                            chunk[l] *= gap / ((1.0 + u[l]) * (1.0 + v[l]));
                            m[l] = m[l].max(chunk[l]);
                            u[l] *= ru4;
                            v[l] *= rv4;
                        }
                    }
                    for (l, p) in chunks.into_remainder().iter_mut().enumerate() {
                        *p *= gap / ((1.0 + u[l]) * (1.0 + v[l]));
                        m[l] = m[l].max(*p);
                    }
                    return m[0].max(m[1]).max(m[2].max(m[3]));
                }
            }
            Kind::PartialCredit => {
                let m = b.len();
                // z_h − z_k = (h − k)·a·θ − a(B_h − B_k), B the cumulative steps.
                let mut cum = [0.0; MAX_CATEGORIES];
                for h in 1..=m {
                    cum[h] = cum[h - 1] + b[h - 1];
                }
                let mut term = [0.0; MAX_CATEGORIES];
                let mut ratio = [1.0; MAX_CATEGORIES];
                let mut fits = true;
                for h in 0..=m {
                    let slope = (h as f64 - k as f64) * a;
                    let offset = -a * (cum[h] - cum[k]);
                    let (at_lo, at_hi) = (slope * lo + offset, slope * hi + offset);
                    fits &= at_lo.abs() <= 600.0 && at_hi.abs() <= 600.0;
                    term[h] = at_lo.exp();
                    ratio[h] = (slope * step).exp();
                }
                if fits {
                    for p in post.iter_mut() {
                        let mut total = 0.0;
                        for h in 0..=m {
                            total += term[h];
                            term[h] *= ratio[h];
                        }
                        *p /= total;
                        max = max.max(*p);
                    }
                    return max;
                }
            }
        }
        for (j, p) in post.iter_mut().enumerate() {
            *p *= self.ln_probability(k, lo + j as f64 * step).exp();
            max = max.max(*p);
        }
        max
    }
}

/// (s_k, t_k) of GRM boundary k ∈ 0…m+1, with s₀ = 1 and s_{m+1} = 0.
#[inline]
fn grm_boundary(a: f64, b: &[f64], k: usize, theta: f64) -> (f64, f64) {
    if k == 0 {
        (1.0, 0.0)
    } else if k > b.len() {
        (0.0, 1.0)
    } else {
        logistic_pair(a * (theta - b[k - 1]))
    }
}

/// Calls `f(P_k, g_k, w_k + w_{k+1})` for every category k = 0…m of a GRM item,
/// with g_k = t_k − s_{k+1} and w = s·t (m `exp` in all).
#[inline]
fn grm_each_category(a: f64, b: &[f64], gap: &[f64], theta: f64, mut f: impl FnMut(f64, f64, f64)) {
    let m = b.len();
    let (mut s, mut t) = (1.0, 0.0);
    for k in 0..=m {
        let (s1, t1) = grm_boundary(a, b, k + 1, theta);
        let gap = if k == m { 1.0 } else { gap[k] };
        f(s * t1 * gap, t - s1, s * t + s1 * t1);
        (s, t) = (s1, t1);
    }
}

/// ln P(X = k) for a GRM item: ln s_k + ln t_{k+1} + ln(1 − e^(−a(b_{k+1} − b_k))).
#[inline]
fn grm_ln_probability(a: f64, b: &[f64], gap: &[f64], k: usize, theta: f64) -> f64 {
    let m = b.len();
    if k > m {
        return f64::NEG_INFINITY;
    }
    // ±1e15: far beyond any difference that matters, and never ±inf.
    let z = |x: f64| (a * (theta - x)).clamp(-1e15, 1e15);
    let ln_s = if k == 0 { 0.0 } else { -softplus(-z(b[k - 1])) };
    let ln_t = if k == m { 0.0 } else { -softplus(z(b[k])) };
    let ln_gap = if k == m { 0.0 } else { gap[k].ln() };
    ln_s + ln_t + ln_gap
}

/// The GPCM logits z_h = Σ_{v ≤ h} a(θ − b_v) for h = 0…m into `z`, with their
/// maximum and ln Σ_h e^(z_h − max).
#[inline]
fn gpcm_logits(a: f64, b: &[f64], theta: f64, z: &mut [f64; MAX_CATEGORIES]) -> (f64, f64) {
    let m = b.len();
    z[0] = 0.0;
    let mut max = 0.0f64;
    for h in 1..=m {
        z[h] = (z[h - 1] + a * (theta - b[h - 1])).clamp(-1e300, 1e300);
        max = max.max(z[h]);
    }
    let total: f64 = z[..=m].iter().map(|&x| (x - max).exp()).sum();
    (max, total.ln())
}

/// Mean, variance and third central moment of a GPCM item's score at θ.
#[inline]
fn gpcm_moments(a: f64, b: &[f64], theta: f64) -> (f64, f64, f64) {
    let m = b.len();
    let mut z = [0.0; MAX_CATEGORIES];
    let (max, _) = gpcm_logits(a, b, theta, &mut z);
    let mut p = [0.0; MAX_CATEGORIES];
    let mut total = 0.0;
    for h in 0..=m {
        p[h] = (z[h] - max).exp();
        total += p[h];
    }
    let mut mu = 0.0;
    for (h, ph) in p[..=m].iter_mut().enumerate() {
        *ph /= total;
        mu += h as f64 * *ph;
    }
    let (mut var, mut mu3) = (0.0, 0.0);
    for (h, &ph) in p[..=m].iter().enumerate() {
        let d = h as f64 - mu;
        var += ph * d * d;
        mu3 += ph * d * d * d;
    }
    (mu, var, mu3)
}

/// The highest information a polytomous item reaches at any θ (an upper bound,
/// within 1e-6 relative): a scan with step 0.2/a from min b − 8/a to
/// max b + 8/a, then golden-section refinement of every local maximum of the
/// scan (a GRM item with distant thresholds has several).
pub(crate) fn max_information(item: &Poly<'_>) -> f64 {
    let (a, b) = (item.a, item.b);
    let info = |theta: f64| item.information(theta);
    let lo = b.iter().copied().fold(f64::INFINITY, f64::min) - 8.0 / a;
    let hi = b.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 8.0 / a;
    let h = 0.2 / a;
    let n = ((hi - lo) / h).ceil().clamp(2.0, 100_000.0) as usize;
    let values: Vec<f64> = (0..=n).map(|j| info(lo + j as f64 * h)).collect();
    let mut best = values.iter().copied().fold(0.0, f64::max);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for j in 0..=n {
        let left = if j > 0 { values[j - 1] } else { 0.0 };
        let right = if j < n { values[j + 1] } else { 0.0 };
        if !(values[j] >= left && values[j] >= right) {
            continue;
        }
        let (mut x0, mut x1) = (lo + (j as f64 - 1.0) * h, lo + (j as f64 + 1.0) * h);
        for _ in 0..60 {
            let (m1, m2) = (x1 - ratio * (x1 - x0), x0 + ratio * (x1 - x0));
            if info(m1) < info(m2) {
                x0 = m1;
            } else {
                x1 = m2;
            }
        }
        best = best.max(info(0.5 * (x0 + x1)));
    }
    best * (1.0 + 1e-6)
}

/// The category drawn by a uniform `u` in [0, 1) (the inverse CDF): for the GRM,
/// the number of boundaries k with u < P(X ≥ k) (m `exp`); for the GPCM, the
/// first k whose cumulative probability exceeds u (m + 1 `exp`).
pub(crate) fn draw(item: &Poly<'_>, theta: f64, u: f64) -> u8 {
    let (a, b, m) = (item.a, item.b, item.b.len());
    match item.kind {
        Kind::Graded => (1..=m)
            .filter(|&k| u < grm_boundary(a, b, k, theta).0)
            .count() as u8,
        Kind::PartialCredit => {
            let mut z = [0.0; MAX_CATEGORIES];
            let (max, ln_total) = gpcm_logits(a, b, theta, &mut z);
            let mut cumulative = 0.0;
            for (k, &zk) in z[..m].iter().enumerate() {
                cumulative += (zk - max - ln_total).exp();
                if u < cumulative {
                    return k as u8;
                }
            }
            m as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ItemParams;
    use proptest::prelude::*;

    fn grm(a: f64, b: &[f64]) -> PolyParams {
        PolyParams::new(PolyModel::Grm, a, b.to_vec()).unwrap()
    }

    fn gpcm(a: f64, b: &[f64]) -> PolyParams {
        PolyParams::new(PolyModel::Gpcm, a, b.to_vec()).unwrap()
    }

    #[test]
    fn new_refuses_bad_items() {
        assert_eq!(
            PolyParams::new(PolyModel::Grm, 1.0, vec![0.5, 0.5]),
            Err(ParamError::ThresholdsNotIncreasing { k: 2 })
        );
        assert_eq!(
            PolyParams::new(PolyModel::Grm, 1.0, vec![]),
            Err(ParamError::Categories(1))
        );
        assert_eq!(
            PolyParams::new(PolyModel::Gpcm, 1.0, vec![0.0; 10]),
            Err(ParamError::Categories(11))
        );
        assert!(matches!(
            PolyParams::new(PolyModel::Gpcm, 1.0, vec![0.0, f64::NAN]),
            Err(ParamError::InvalidThreshold { k: 2, .. })
        ));
        assert_eq!(
            PolyParams::new(PolyModel::Pcm, 1.2, vec![0.0]),
            Err(ParamError::InvalidA(1.2))
        );
        assert_eq!(
            PolyParams::new(PolyModel::Grm, -1.0, vec![0.0]),
            Err(ParamError::InvalidA(-1.0))
        );
        // Unordered steps are fine for the partial credit models.
        assert!(PolyParams::new(PolyModel::Gpcm, 1.0, vec![0.5, -0.5]).is_ok());
        assert!(PolyParams::new(PolyModel::Pcm, 1.0, vec![0.0; 9]).is_ok());
    }

    #[test]
    fn two_categories_are_the_2pl() {
        let two = ItemParams::new(1.3, 0.4, 0.0, 1.0).unwrap();
        for item in [grm(1.3, &[0.4]), gpcm(1.3, &[0.4])] {
            for theta in [-7.0, -1.0, 0.4, 2.2, 9.0] {
                let mut p = [0.0; 2];
                item.probabilities(theta, &mut p);
                let want = two.probability(theta);
                assert!((p[1] - want).abs() < 1e-15 && (p[0] - (1.0 - want)).abs() < 1e-15);
                let (i, j) = (item.information(theta), two.information(theta));
                assert!((i - j).abs() <= 1e-14 * j.max(1e-300), "{i} vs {j}");
            }
        }
    }

    #[test]
    fn grid_multiplication_matches_the_probabilities() {
        let items = [
            grm(1.4, &[-1.0, 0.2, 0.9, 2.0]),
            gpcm(0.9, &[0.6, -0.4, 1.1]),
            // Far out, so that the log-space path runs.
            grm(90.0, &[-2.0, 3.0]),
            gpcm(80.0, &[-3.0, 4.0]),
        ];
        for item in &items {
            let gap = gaps(item.model(), item.a(), item.thresholds());
            for k in 0..item.categories() {
                let mut post = [1.0; 61];
                let max = item.view(&gap).multiply_grid(k, &mut post, -6.0, 0.2);
                let mut want = [0.0; MAX_CATEGORIES];
                for (j, &p) in post.iter().enumerate() {
                    item.probabilities(-6.0 + 0.2 * j as f64, &mut want);
                    assert!(
                        (p - want[k]).abs() <= 1e-12 * want[k].max(1e-290),
                        "{item:?} {k} {j}"
                    );
                }
                assert_eq!(max, post.iter().copied().fold(0.0, f64::max));
            }
        }
    }

    #[test]
    fn max_information_bounds_the_information() {
        let items = [
            grm(1.4, &[-1.0, 0.2, 0.9, 2.0]),
            grm(2.5, &[-3.0, 3.0]),
            gpcm(0.9, &[0.6, -0.4, 1.1]),
            PolyParams::new(PolyModel::Pcm, 1.0, vec![-2.0, 0.0, 0.5, 3.0]).unwrap(),
        ];
        for item in &items {
            let gap = gaps(item.model(), item.a(), item.thresholds());
            let top = max_information(&item.view(&gap));
            let grid = (0..=200_000)
                .map(|j| item.information(-10.0 + f64::from(j) * 1e-4))
                .fold(0.0, f64::max);
            assert!(
                grid <= top && grid >= top * (1.0 - 1e-5),
                "{item:?}: {grid} vs {top}"
            );
        }
    }

    fn arb_item() -> impl Strategy<Value = PolyParams> {
        (
            0.2f64..3.0,
            proptest::collection::vec(-3.0f64..3.0, 1..9),
            0..3u8,
        )
            .prop_map(|(a, mut b, model)| match model {
                0 => {
                    b.sort_by(f64::total_cmp);
                    b.dedup();
                    PolyParams::new(PolyModel::Grm, a, b).unwrap()
                }
                1 => PolyParams::new(PolyModel::Gpcm, a, b).unwrap(),
                _ => PolyParams::new(PolyModel::Pcm, 1.0, b).unwrap(),
            })
    }

    proptest! {
        #[test]
        fn probabilities_sum_to_one(item in arb_item(), theta in -8.0f64..8.0) {
            let mut p = [0.0; MAX_CATEGORIES];
            item.probabilities(theta, &mut p);
            let total: f64 = p.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-12, "{total}");
            prop_assert!(p.iter().all(|&x| (0.0..=1.0).contains(&x)));
        }

        #[test]
        fn information_is_sum_of_p_prime_squared_over_p(item in arb_item(), theta in -4.0f64..4.0) {
            let gap = gaps(item.model(), item.a(), item.thresholds());
            let view = item.view(&gap);
            let info = item.information(theta);
            prop_assert!(info.is_finite() && info >= 0.0);
            // Σ P′²/P from the analytic scores: P′ = P·l′.
            let mut p = [0.0; MAX_CATEGORIES];
            item.probabilities(theta, &mut p);
            let want: f64 = (0..item.categories())
                .map(|k| p[k] * view.loglik_derivs(k, theta).0.powi(2))
                .sum();
            prop_assert!((info - want).abs() <= 1e-10 * want.max(1e-12), "{info} vs {want}");
            // Within the distance bound.
            let (lo, hi) = item.thresholds().iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
            let delta = (lo - theta).max(theta - hi).max(0.0);
            let bound = (view.ln_bound() - item.a() * delta).exp();
            prop_assert!(info <= bound * (1.0 + 1e-12), "{info} > {bound}");
            if let Some(ln_near) = view.ln_near_bound() {
                let near = (ln_near - item.a() * view.nearest(theta)).exp();
                prop_assert!(info <= near * (1.0 + 1e-12), "{info} > {near}");
                // The sum of the boundary curves, which the proof bounds it by.
                // (s and t each from its own exponential: 1 − s would lose digits in
                // the tails, where a one-threshold item meets its bound exactly.)
                let boundaries: f64 = item.thresholds().iter().map(|&b| {
                    let z = item.a() * (theta - b);
                    let (s, t) = (1.0 / (1.0 + (-z).exp()), 1.0 / (1.0 + z.exp()));
                    item.a() * item.a() * s * t
                }).sum();
                prop_assert!(info <= boundaries * (1.0 + 1e-10), "{info} > {boundaries}");
            }
        }

        #[test]
        fn derivatives_match_finite_differences(item in arb_item(), theta in -4.0f64..4.0, k in 0usize..10) {
            let gap = gaps(item.model(), item.a(), item.thresholds());
            let view = item.view(&gap);
            let k = k % item.categories();
            let l = |t: f64| view.ln_probability(k, t);
            let h = 1e-4;
            let num1 = (l(theta + h) - l(theta - h)) / (2.0 * h);
            let num2 = (l(theta + h) - 2.0 * l(theta) + l(theta - h)) / (h * h);
            let (l1, l2) = view.loglik_derivs(k, theta);
            prop_assert!((l1 - num1).abs() < 1e-6 * (1.0 + l1.abs()), "l1 {} vs {}", l1, num1);
            prop_assert!((l2 - num2).abs() < 1e-3 * (1.0 + l2.abs()), "l2 {} vs {}", l2, num2);
            prop_assert!(l2 <= 0.0);
            // J = Σ P′P″/P by finite differences of the probabilities.
            let probs = |t: f64| { let mut p = [0.0; MAX_CATEGORIES]; item.probabilities(t, &mut p); p };
            let (pm, p0, pp) = (probs(theta - h), probs(theta), probs(theta + h));
            let want: f64 = (0..item.categories())
                .filter(|&c| p0[c] > 1e-9)
                .map(|c| {
                    let d1 = (pp[c] - pm[c]) / (2.0 * h);
                    let d2 = (pp[c] - 2.0 * p0[c] + pm[c]) / (h * h);
                    d1 * d2 / p0[c]
                })
                .sum();
            let (_, _, j) = view.warm_terms(k, theta);
            prop_assert!((j - want).abs() < 1e-3 * (1.0 + want.abs()), "J {} vs {}", j, want);
        }
    }
}
