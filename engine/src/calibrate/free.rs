//! The free-parameter form of each model (z = aθ + d), its Fisher-scoring
//! M-step and starting values.

use super::{A_RANGE, D_BOUND, Model, StdErrors};
use crate::item::Item;
use crate::model::{ItemParams, logistic_pair};
use crate::poly::{MAX_CATEGORIES, PolyModel, PolyParams};

/// One free item: its model, categories and internal parameters ξ:
/// 1PL [d]; 2PL [a, d]; 3PL [a, d, logit c]; GRM and GPCM [a, d₁ … d_m];
/// PCM [d₁ … d_m]. b_k = −d_k / a.
#[derive(Debug, Clone)]
pub(super) struct Free {
    pub(super) model: Model,
    pub(super) cats: usize,
    pub(super) xi: Vec<f64>,
}

/// Per-category scratch of [`Free::eval`].
pub(super) const MAX_DIM: usize = MAX_CATEGORIES; // a + 9 intercepts

impl Free {
    pub(super) fn dim(&self) -> usize {
        self.xi.len()
    }

    pub(super) fn has_slope(&self) -> bool {
        self.model.free_slope()
    }

    pub(super) fn slope(&self, xi: &[f64]) -> f64 {
        if self.has_slope() { xi[0] } else { 1.0 }
    }

    /// Intercepts d (one, or one per threshold).
    pub(super) fn intercepts<'x>(&self, xi: &'x [f64]) -> &'x [f64] {
        match self.model {
            Model::OnePl => &xi[..1],
            Model::TwoPl => &xi[1..2],
            Model::ThreePl => &xi[1..2],
            Model::Poly(PolyModel::Pcm) => xi,
            Model::Poly(_) => &xi[1..],
        }
    }

    /// Whether ξ is inside the parameter space.
    pub(super) fn valid(&self, xi: &[f64]) -> bool {
        if xi.iter().any(|x| !x.is_finite()) {
            return false;
        }
        if self.has_slope() && !(A_RANGE.0..=A_RANGE.1).contains(&xi[0]) {
            return false;
        }
        let d = self.intercepts(xi);
        if d.iter().any(|x| x.abs() > D_BOUND) {
            return false;
        }
        if self.model == Model::ThreePl && xi[2].abs() > 12.0 {
            return false;
        }
        // GRM: thresholds strictly increasing, i.e. intercepts strictly decreasing.
        !(self.model == Model::Poly(PolyModel::Grm) && d.windows(2).any(|w| w[0] - w[1] < 1e-6))
    }

    /// Category probabilities P_k(θ) into `p[..cats]`, and, when `u` is given,
    /// the scores ∂ln P_k/∂ξ into `u[k * dim ..][..dim]` (0 where P_k = 0).
    pub(super) fn eval(&self, xi: &[f64], theta: f64, p: &mut [f64], u: Option<&mut [f64]>) {
        self.eval_with(xi, &self.constants(xi), theta, p, u);
    }

    /// What [`Free::eval`] needs of ξ that does not depend on θ, for evaluating
    /// at many nodes: the GRM's 1 − e^{−(d_k − d_{k+1})}.
    pub(super) fn constants(&self, xi: &[f64]) -> [f64; MAX_DIM] {
        let mut c = [0.0; MAX_DIM];
        if self.model == Model::Poly(PolyModel::Grm) {
            for (c, w) in c.iter_mut().zip(xi[1..].windows(2)) {
                *c = -(-(w[0] - w[1])).exp_m1();
            }
        }
        c
    }

    /// [`Free::eval`] with ξ's [`Free::constants`] worked out already.
    pub(super) fn eval_with(
        &self,
        xi: &[f64],
        constants: &[f64; MAX_DIM],
        theta: f64,
        p: &mut [f64],
        u: Option<&mut [f64]>,
    ) {
        let dim = xi.len();
        match self.model {
            Model::OnePl | Model::TwoPl => {
                let (a, d) = (self.slope(xi), self.intercepts(xi)[0]);
                let (s, t) = logistic_pair(a * theta + d);
                p[0] = t;
                p[1] = s;
                if let Some(u) = u {
                    let (u0, u1) = u.split_at_mut(dim);
                    if self.model == Model::TwoPl {
                        u0[0] = -s * theta;
                        u0[1] = -s;
                        u1[0] = t * theta;
                        u1[1] = t;
                    } else {
                        u0[0] = -s;
                        u1[0] = t;
                    }
                }
            }
            Model::ThreePl => {
                let (a, d) = (xi[0], xi[1]);
                let (s, t) = logistic_pair(a * theta + d);
                let (c, cc) = logistic_pair(xi[2]);
                let p1 = c + cc * s;
                let p0 = cc * t;
                p[0] = p0;
                p[1] = p1;
                if let Some(u) = u {
                    // ∂P₁/∂z = (1 − c) s t; ∂P₁/∂γ = c (1 − c) t; P₀ = (1 − c) t.
                    let dz = cc * s * t;
                    let dg = c * cc * t;
                    u[0] = -s * theta;
                    u[1] = -s;
                    u[2] = -c;
                    if p1 > 0.0 {
                        u[3] = dz * theta / p1;
                        u[4] = dz / p1;
                        u[5] = dg / p1;
                    } else {
                        u[3..6].fill(0.0);
                    }
                }
            }
            Model::Poly(PolyModel::Grm) => self.eval_grm(xi, constants, theta, p, u),
            Model::Poly(_) => self.eval_pcm(xi, theta, p, u),
        }
    }

    /// GRM: s_k = σ(aθ + d_k); P_0 = t_1, P_m = s_m and, in between, the exact
    /// product P_k = s_k t_{k+1} (1 − e^{−(d_k − d_{k+1})}) (no cancellation).
    /// With w_k = s_k t_k: ∂P_k/∂a = θ(w_k − w_{k+1}), ∂P_k/∂d_k = w_k,
    /// ∂P_k/∂d_{k+1} = −w_{k+1}.
    fn eval_grm(
        &self,
        xi: &[f64],
        gaps: &[f64; MAX_DIM],
        theta: f64,
        p: &mut [f64],
        u: Option<&mut [f64]>,
    ) {
        let a = xi[0];
        let d = &xi[1..];
        let m = d.len();
        let mut s = [0.0; MAX_DIM + 1];
        let mut t = [0.0; MAX_DIM + 1];
        // s[k], t[k] for k = 1..=m; s[0] = 1, t[0] = 0; s[m+1] = 0, t[m+1] = 1.
        s[0] = 1.0;
        for k in 1..=m {
            (s[k], t[k]) = logistic_pair(a * theta + d[k - 1]);
        }
        s[m + 1] = 0.0;
        t[m + 1] = 1.0;
        for k in 0..=m {
            p[k] = if k == 0 {
                t[1]
            } else if k == m {
                s[m]
            } else {
                s[k] * t[k + 1] * gaps[k - 1]
            };
        }
        if let Some(u) = u {
            let dim = m + 1;
            u[..(m + 1) * dim].fill(0.0);
            for k in 0..=m {
                let row = &mut u[k * dim..(k + 1) * dim];
                // ∂ln P_k / ∂z_k = w_k / P_k and ∂ln P_k / ∂z_{k+1} = −w_{k+1} / P_k,
                // written without dividing where a closed form exists.
                let (lo, hi) = if k == 0 {
                    (0.0, s[1]) // w_1 / t_1 = s_1
                } else if k == m {
                    (t[m], 0.0) // w_m / s_m = t_m
                } else if p[k] > 0.0 {
                    (s[k] * t[k] / p[k], s[k + 1] * t[k + 1] / p[k])
                } else {
                    (0.0, 0.0)
                };
                row[0] = theta * (lo - hi);
                if k >= 1 {
                    row[k] = lo;
                }
                if k < m {
                    row[k + 1] = -hi;
                }
            }
        }
    }

    /// GPCM / PCM: z_k = k·aθ + Σ_{v ≤ k} d_v, P = softmax(z). With μ the mean
    /// score and T_v = P(X ≥ v): ∂ln P_k/∂a = θ(k − μ), ∂ln P_k/∂d_v = [v ≤ k] − T_v.
    fn eval_pcm(&self, xi: &[f64], theta: f64, p: &mut [f64], u: Option<&mut [f64]>) {
        let a = self.slope(xi);
        let d = self.intercepts(xi);
        let m = d.len();
        let mut z = 0.0;
        let mut zmax: f64 = 0.0;
        p[0] = 0.0;
        for k in 1..=m {
            z += a * theta + d[k - 1];
            p[k] = z;
            zmax = zmax.max(z);
        }
        let mut sum = 0.0;
        for x in &mut p[..=m] {
            *x = (*x - zmax).exp();
            sum += *x;
        }
        for x in &mut p[..=m] {
            *x /= sum;
        }
        if let Some(u) = u {
            let dim = xi.len();
            let off = usize::from(self.has_slope());
            let mut tail = [0.0; MAX_DIM + 1];
            let mut acc = 0.0;
            for v in (1..=m).rev() {
                acc += p[v];
                tail[v] = acc;
            }
            let mean: f64 = (1..=m).map(|k| k as f64 * p[k]).sum();
            for k in 0..=m {
                let row = &mut u[k * dim..(k + 1) * dim];
                if off == 1 {
                    row[0] = theta * (k as f64 - mean);
                }
                for v in 1..=m {
                    row[off + v - 1] = f64::from(u8::from(v <= k)) - tail[v];
                }
            }
        }
    }

    /// Log prior density of ξ (up to a constant), its gradient and the negative
    /// of its Hessian's diagonal: the Beta(α, β) prior on the 3PL's c.
    pub(super) fn prior(&self, xi: &[f64], c_prior: (f64, f64)) -> Option<(f64, f64, f64)> {
        if self.model != Model::ThreePl {
            return None;
        }
        let (alpha, beta) = c_prior;
        let (c, cc) = logistic_pair(xi[2]);
        let value = (alpha - 1.0) * c.ln() + (beta - 1.0) * cc.ln();
        let grad = (alpha - 1.0) * cc - (beta - 1.0) * c;
        let curvature = (alpha + beta - 2.0) * c * cc;
        Some((value, grad, curvature))
    }

    /// The engine's item for ξ.
    pub(super) fn item(&self, xi: &[f64]) -> Item {
        let a = self.slope(xi);
        let b: Vec<f64> = self.intercepts(xi).iter().map(|d| -d / a).collect();
        let built = match self.model {
            Model::OnePl => ItemParams::new(1.0, b[0], 0.0, 1.0).map(Item::from),
            Model::TwoPl => ItemParams::new(a, b[0], 0.0, 1.0).map(Item::from),
            Model::ThreePl => ItemParams::new(a, b[0], logistic_pair(xi[2]).0, 1.0).map(Item::from),
            Model::Poly(model) => PolyParams::new(model, a, b).map(Item::from),
        };
        built.expect("estimates stay inside the parameter space")
    }

    /// Standard errors of (a, b…, c) from the covariance of ξ (row-major dim × dim).
    pub(super) fn std_errors(&self, xi: &[f64], cov: &[f64]) -> StdErrors {
        let dim = xi.len();
        let var = |j: usize| cov[j * dim + j].max(0.0).sqrt();
        let a = self.slope(xi);
        let d0 = usize::from(self.has_slope());
        let intercepts = self.intercepts(xi);
        let b = intercepts
            .iter()
            .enumerate()
            .map(|(k, &d)| {
                let j = d0 + k;
                if self.has_slope() {
                    // b = −d/a: ∂b/∂a = d/a², ∂b/∂d = −1/a.
                    let (ga, gd) = (d / (a * a), -1.0 / a);
                    let v = ga * ga * cov[0] + 2.0 * ga * gd * cov[j] + gd * gd * cov[j * dim + j];
                    v.max(0.0).sqrt()
                } else {
                    var(j)
                }
            })
            .collect();
        let c = (self.model == Model::ThreePl).then(|| {
            let (c, cc) = logistic_pair(xi[2]);
            c * cc * var(2)
        });
        StdErrors {
            a: self.has_slope().then(|| var(0)),
            b,
            c,
        }
    }
}

/// Fisher-scoring steps per M-step at most: EM needs each M-step to raise the
/// expected log-likelihood, not to maximise it, and the steps start from the
/// previous iteration's values, so two are nearly always a full maximisation.
const NEWTON_STEPS: usize = 2;

/// Maximises Σ_q Σ_k r_kq ln P_k(θ_q) (+ the prior) over ξ by Fisher scoring
/// with step halving, and writes P_k(θ_q) at the result into `block`. `r` and
/// `block` hold a row per category (of Q or more: the rest is left alone).
/// Returns the largest parameter change.
///
/// The model is evaluated once per node for each point tried: the
/// probabilities and scores that give a point's objective also give the next
/// step from it, and the accepted point's probabilities are the new table.
pub(super) fn m_step_item(
    free: &mut Free,
    nodes: &[f64],
    r: &[f64],
    c_prior: (f64, f64),
    block: &mut [f64],
) -> f64 {
    let q_len = nodes.len();
    let dim = free.dim();
    let cats = free.cats;
    let stride = r.len() / cats;
    let n: Vec<f64> = (0..q_len)
        .map(|q| (0..cats).map(|k| r[k * stride + q]).sum())
        .collect();
    // P and the scores at the current point, and at a trial point.
    let mut at = Evaluated::new(q_len, cats, dim);
    let mut trial = Evaluated::new(q_len, cats, dim);
    let start = free.xi.clone();
    let mut f = at.evaluate(free, &free.xi, nodes, r, stride, c_prior);
    let mut grad = [0.0; MAX_DIM];
    let mut info = [0.0; MAX_DIM * MAX_DIM];
    let mut xi = vec![0.0; dim];
    for _ in 0..NEWTON_STEPS {
        grad[..dim].fill(0.0);
        info[..dim * dim].fill(0.0);
        for q in 0..q_len {
            let p = &at.p[q * cats..][..cats];
            let u = &at.u[q * cats * dim..][..cats * dim];
            for k in 0..cats {
                let row = &u[k * dim..(k + 1) * dim];
                let rk = r[k * stride + q];
                let w = n[q] * p[k];
                for i in 0..dim {
                    grad[i] += rk * row[i];
                    if w > 0.0 {
                        for j in 0..=i {
                            info[i * dim + j] += w * row[i] * row[j];
                        }
                    }
                }
            }
        }
        if let Some((_, g, h)) = free.prior(&free.xi, c_prior) {
            grad[2] += g;
            info[2 * dim + 2] += h;
        }
        for i in 0..dim {
            for j in 0..i {
                info[j * dim + i] = info[i * dim + j];
            }
        }
        let Some(step) = solve_spd(&info[..dim * dim], &grad[..dim]) else {
            break;
        };
        let mut scale = 1.0;
        let mut moved = 0.0;
        for _ in 0..30 {
            for j in 0..dim {
                xi[j] = free.xi[j] + scale * step[j];
            }
            if free.valid(&xi) {
                let g = trial.evaluate(free, &xi, nodes, r, stride, c_prior);
                if g >= f - 1e-12 * f.abs() {
                    moved = step.iter().fold(0.0_f64, |m, s| m.max((scale * s).abs()));
                    free.xi.copy_from_slice(&xi);
                    std::mem::swap(&mut at, &mut trial);
                    f = g;
                    break;
                }
            }
            scale *= 0.5;
        }
        if moved < 1e-7 {
            break;
        }
    }
    for q in 0..q_len {
        for k in 0..cats {
            block[k * stride + q] = at.p[q * cats + k];
        }
    }
    start
        .iter()
        .zip(&free.xi)
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()))
}

/// An item's probabilities (node-major, Q × cats) and scores (Q × cats × dim)
/// at one point.
struct Evaluated {
    p: Vec<f64>,
    u: Vec<f64>,
}

impl Evaluated {
    fn new(q_len: usize, cats: usize, dim: usize) -> Evaluated {
        Evaluated {
            p: vec![0.0; q_len * cats],
            u: vec![0.0; q_len * cats * dim],
        }
    }

    /// Evaluates the model at ξ over the nodes; returns the M-step objective.
    fn evaluate(
        &mut self,
        free: &Free,
        xi: &[f64],
        nodes: &[f64],
        r: &[f64],
        stride: usize,
        c_prior: (f64, f64),
    ) -> f64 {
        let cats = free.cats;
        let dim = xi.len();
        let mut f = 0.0;
        let constants = free.constants(xi);
        for (q, &theta) in nodes.iter().enumerate() {
            let p = &mut self.p[q * cats..][..cats];
            let u = &mut self.u[q * cats * dim..][..cats * dim];
            free.eval_with(xi, &constants, theta, p, Some(u));
            for (k, &pk) in p.iter().enumerate() {
                let rk = r[k * stride + q];
                if rk > 0.0 {
                    f += rk * pk.ln();
                }
            }
        }
        f + free.prior(xi, c_prior).map_or(0.0, |(v, _, _)| v)
    }
}

/// The Cholesky factor L (A = L Lᵀ) of a symmetric positive definite matrix.
pub(super) struct Cholesky {
    n: usize,
    /// Row-major n × n, lower triangle.
    l: Vec<f64>,
}

impl Cholesky {
    /// Factors `a` (row-major n × n; only its lower triangle is read); `None`
    /// when it is not positive definite.
    pub(super) fn new(a: &[f64], n: usize) -> Option<Cholesky> {
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
                if i == j {
                    if !(s > 0.0 && s.is_finite()) {
                        return None;
                    }
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
        Some(Cholesky { n, l })
    }

    /// x with A x = b.
    pub(super) fn solve(&self, b: &[f64]) -> Vec<f64> {
        let (n, l) = (self.n, &self.l);
        let mut y = vec![0.0; n];
        for i in 0..n {
            let s = b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>();
            y[i] = s / l[i * n + i];
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            let s = y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>();
            x[i] = s / l[i * n + i];
        }
        x
    }

    /// The block of A⁻¹ for rows and columns `first..first + dim` (row-major dim × dim).
    pub(super) fn inverse_block(&self, first: usize, dim: usize) -> Vec<f64> {
        let mut block = vec![0.0; dim * dim];
        let mut e = vec![0.0; self.n];
        for j in 0..dim {
            e.fill(0.0);
            e[first + j] = 1.0;
            let col = self.solve(&e);
            for i in 0..dim {
                block[i * dim + j] = col[first + i];
            }
        }
        block
    }
}

/// Solves A x = b for a symmetric positive definite `A` (row-major n × n);
/// `None` when A is not positive definite.
fn solve_spd(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    Cholesky::new(a, b.len()).map(|c| c.solve(b))
}

/// Starting values from the category counts, with a = 1: the logit of each
/// cumulative proportion (1PL–3PL, GRM), or the log ratio of adjacent
/// categories (GPCM, PCM).
pub(super) fn start_values(model: Model, n: &[usize]) -> Vec<f64> {
    let total: usize = n.iter().sum();
    let logit = |above: usize| {
        let p = (above as f64 + 0.5) / (total as f64 + 1.0);
        (p / (1.0 - p)).ln().clamp(-4.0, 4.0)
    };
    match model {
        Model::OnePl => vec![logit(n[1])],
        Model::TwoPl => vec![1.0, logit(n[1])],
        Model::ThreePl => vec![1.0, logit(n[1]) - 0.5, (0.2_f64 / 0.8).ln()],
        Model::Poly(PolyModel::Grm) => {
            let mut xi = vec![1.0];
            let mut above = total;
            for &count in &n[..n.len() - 1] {
                above -= count;
                xi.push(logit(above));
            }
            // Strictly decreasing even when clamped.
            for k in 2..xi.len() {
                if xi[k] > xi[k - 1] - 0.01 {
                    xi[k] = xi[k - 1] - 0.01;
                }
            }
            xi
        }
        Model::Poly(p) => {
            let mut xi: Vec<f64> = if p == PolyModel::Gpcm {
                vec![1.0]
            } else {
                vec![]
            };
            for k in 1..n.len() {
                xi.push(
                    ((n[k] as f64 + 0.5) / (n[k - 1] as f64 + 0.5))
                        .ln()
                        .clamp(-4.0, 4.0),
                );
            }
            xi
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(model: Model, xi: Vec<f64>) -> Free {
        let cats = match model {
            Model::OnePl | Model::TwoPl | Model::ThreePl => 2,
            Model::Poly(PolyModel::Pcm) => xi.len() + 1,
            Model::Poly(_) => xi.len(),
        };
        Free { model, cats, xi }
    }

    /// Every model's probabilities equal the engine's item model, sum to 1, and
    /// its scores equal finite differences of ln P.
    #[test]
    fn probabilities_and_scores_match_the_engine_and_finite_differences() {
        let cases = [
            free(Model::OnePl, vec![0.4]),
            free(Model::TwoPl, vec![1.7, -0.6]),
            free(Model::ThreePl, vec![1.3, 0.5, -1.2]),
            free(Model::Poly(PolyModel::Grm), vec![1.4, 2.0, 0.3, -1.1]),
            free(Model::Poly(PolyModel::Gpcm), vec![0.9, 1.0, -0.4, 0.2]),
            free(Model::Poly(PolyModel::Pcm), vec![0.7, -0.5]),
        ];
        for f in &cases {
            let item = f.item(&f.xi);
            let dim = f.dim();
            for theta in [-3.1, -0.4, 0.0, 1.2, 2.8] {
                let mut p = [0.0; MAX_CATEGORIES];
                let mut u = [0.0; MAX_CATEGORIES * MAX_DIM];
                f.eval(&f.xi, theta, &mut p, Some(&mut u));
                let engine = item.probabilities(theta);
                for k in 0..f.cats {
                    assert!(
                        (p[k] - engine[k]).abs() < 1e-12,
                        "{} P{k}({theta}) {} vs {}",
                        f.model,
                        p[k],
                        engine[k]
                    );
                }
                assert!((p[..f.cats].iter().sum::<f64>() - 1.0).abs() < 1e-12);
                for j in 0..dim {
                    let h = 1e-6;
                    let (mut hi, mut lo) = (f.xi.clone(), f.xi.clone());
                    hi[j] += h;
                    lo[j] -= h;
                    let (mut ph, mut pl) = ([0.0; MAX_CATEGORIES], [0.0; MAX_CATEGORIES]);
                    f.eval(&hi, theta, &mut ph, None);
                    f.eval(&lo, theta, &mut pl, None);
                    for k in 0..f.cats {
                        let fd = (ph[k].ln() - pl[k].ln()) / (2.0 * h);
                        assert!(
                            (u[k * dim + j] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{} ∂lnP{k}/∂ξ{j} at {theta}: {} vs {fd}",
                            f.model,
                            u[k * dim + j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn solve_spd_solves_and_refuses_indefinite() {
        let a = [4.0, 1.0, 1.0, 3.0];
        let x = solve_spd(&a, &[1.0, 2.0]).unwrap();
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-12);
        assert!((x[0] + 3.0 * x[1] - 2.0).abs() < 1e-12);
        assert!(solve_spd(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none());
        let inv = Cholesky::new(&a, 2).unwrap().inverse_block(0, 2);
        assert!((inv[0] - 3.0 / 11.0).abs() < 1e-12 && (inv[1] + 1.0 / 11.0).abs() < 1e-12);
    }
}
