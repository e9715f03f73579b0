//! Ability estimation: expected a posteriori (EAP), maximum a posteriori (MAP),
//! maximum likelihood (MLE) and Warm's weighted likelihood (WLE), all on the
//! bounded range [`THETA_MIN`], [`THETA_MAX`].
//!
//! Standard errors: EAP reports the posterior SD; MAP 1/√(I(θ̂) + 1/σ²) (the
//! posterior information); MLE and WLE 1/√I(θ̂), I the test information of the
//! answered items, capped at [`Mle::SE_CAP`].

use super::bank::ItemBank;

/// Lowest ability any estimator here reports (MLE/MAP bound, default EAP grid end).
pub const THETA_MIN: f64 = -6.0;
/// Highest ability any estimator here reports (MLE/MAP bound, default EAP grid end).
pub const THETA_MAX: f64 = 6.0;

/// An ability estimate and its standard error, both always finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Estimated ability θ.
    pub theta: f64,
    /// Standard error of `theta` (posterior SD for EAP).
    pub se: f64,
}

/// A normal prior N(mean, sd²) on ability. `Default` is N(0, 1).
///
/// The fields are public, so nonsense can be written into them; estimators read
/// the prior through a sanitising step (see [`NormalPrior::sanitized`]) rather than
/// producing NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalPrior {
    /// Prior mean.
    pub mean: f64,
    /// Prior standard deviation (> 0).
    pub sd: f64,
}

impl Default for NormalPrior {
    fn default() -> Self {
        NormalPrior { mean: 0.0, sd: 1.0 }
    }
}

impl NormalPrior {
    /// N(mean, sd²).
    pub fn new(mean: f64, sd: f64) -> Self {
        NormalPrior { mean, sd }
    }

    /// The prior actually used by the estimators: a non-finite mean becomes 0, a
    /// non-finite or non-positive sd becomes 1, and sd is kept within `[1e-6, 1e6]`
    /// so that the precision 1/sd² stays a normal finite number.
    pub fn sanitized(self) -> Self {
        let mean = if self.mean.is_finite() {
            self.mean
        } else {
            0.0
        };
        let sd = if self.sd.is_finite() && self.sd > 0.0 {
            self.sd.clamp(1e-6, 1e6)
        } else {
            1.0
        };
        NormalPrior { mean, sd }
    }

    /// Log-density up to a constant, at θ.
    fn ln_density(&self, theta: f64) -> f64 {
        let z = (theta - self.mean) / self.sd;
        -0.5 * z * z
    }
}

/// Something that turns a response pattern into an ability estimate.
pub trait Estimator: Send + Sync {
    /// Estimates θ from the answers to `items` (indexes into `bank`); `answers[i]`
    /// is the score of `items[i]`: 0…m for a polytomous item, 1 (correct) or 0
    /// for a dichotomous one.
    ///
    /// `items` and `answers` are paired up to the shorter of the two, and pairs
    /// whose item index is not in `bank`, or whose score is above the item's
    /// highest, are ignored, so this never panics; the
    /// caller is expected to have validated them. With no (usable) answer, EAP and
    /// MAP return the prior mean (clamped to their range) and the prior sd, and MLE
    /// returns θ = 0 with se = [`Mle::SE_CAP`]. The result is always finite.
    fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate;

    /// This estimator as an [`Eap`], if it is one: a simulation then keeps a
    /// running [`Posterior`] per examinee.
    fn as_eap(&self) -> Option<&Eap> {
        None
    }
}

/// The usable (item, score) pairs: zipped to the shorter slice, out-of-range
/// items and scores skipped.
#[inline]
fn responses<'a>(
    bank: &'a ItemBank,
    items: &'a [usize],
    answers: &'a [u8],
) -> impl Iterator<Item = (usize, u8)> + 'a {
    let n = bank.len();
    items
        .iter()
        .zip(answers)
        .filter(move |&(&i, &u)| i < n && u <= bank.max_score(i))
        .map(|(&i, &u)| (i, u))
}

/// Test information of the answered items at θ (sum of item Fisher information).
fn answered_information(bank: &ItemBank, items: &[usize], answers: &[u8], theta: f64) -> f64 {
    responses(bank, items, answers)
        .map(|(i, _)| bank.information(i, theta))
        .sum()
}

// ---------------------------------------------------------------------------
// Likelihood on an evenly spaced grid (EAP quadrature, MLE/MAP global scan).
// ---------------------------------------------------------------------------

/// Rescale the running products once their maximum falls below this, so that
/// long tests do not underflow (the posterior is normalised at the end anyway).
const RESCALE_BELOW: f64 = 1e-200;
/// Below this the rescaling factor 1/max could overflow: switch to log space.
const GIVE_UP_BELOW: f64 = 1e-290;
/// Grids up to this size live on the stack.
const STACK_POINTS: usize = 256;

/// Runs `f` on a zeroed scratch buffer of `n` values, on the stack when small
/// enough, so that the usual EAP call does not allocate.
#[inline]
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    if n <= 64 {
        // The default 61-point grid: a quarter of the clearing.
        let mut buf = [0.0f64; 64];
        f(&mut buf[..n])
    } else if n <= STACK_POINTS {
        let mut buf = [0.0f64; STACK_POINTS];
        f(&mut buf[..n])
    } else {
        let mut buf = vec![0.0f64; n];
        f(&mut buf)
    }
}

/// Prior weights on a grid: linear values (max 1) and their logarithms.
type GridPrior<'a> = Option<(&'a [f64], &'a [f64])>;

/// Fills `post` with values proportional to prior × likelihood at the evenly spaced
/// `nodes` (`nodes[j] = nodes[0] + j·step`), scaled so that the largest is about 1.
///
/// The fast path multiplies probabilities (with rescaling); if that underflows
/// everywhere (e.g. an item far outside the grid answered against the odds) it
/// is redone with log-probabilities, which cannot underflow. Returns false only
/// when even that fails (NaN from unchecked parameters).
fn grid_posterior(
    bank: &ItemBank,
    items: &[usize],
    answers: &[u8],
    nodes: &[f64],
    step: f64,
    prior: GridPrior<'_>,
    post: &mut [f64],
) -> bool {
    if post.is_empty() {
        return false;
    }
    let lo = nodes[0];
    match prior {
        Some((w, _)) => post.copy_from_slice(w),
        None => post.fill(1.0),
    }
    let mut ok = true;
    for (i, u) in responses(bank, items, answers) {
        let max = bank.multiply_grid(i, u, post, lo, step);
        if max < RESCALE_BELOW {
            if max > GIVE_UP_BELOW {
                let scale = 1.0 / max;
                post.iter_mut().for_each(|p| *p *= scale);
            } else {
                ok = false;
                break;
            }
        }
    }
    if ok {
        let total: f64 = post.iter().sum();
        if total.is_finite() && total > 0.0 {
            return true;
        }
    }
    // Log-space fallback.
    match prior {
        Some((_, ln)) => post.copy_from_slice(ln),
        None => post.fill(0.0),
    }
    for (i, u) in responses(bank, items, answers) {
        for (p, &theta) in post.iter_mut().zip(nodes) {
            *p += bank.ln_likelihood(i, theta, u);
        }
    }
    let max = post.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    if !max.is_finite() {
        return false;
    }
    post.iter_mut().for_each(|p| *p = (*p - max).exp());
    let total: f64 = post.iter().sum();
    total.is_finite() && total > 0.0
}

/// Evenly spaced nodes on `[lo, hi]`, computed as lo + (hi − lo)·j/(n − 1) so that
/// both ends are exact and a symmetric range gives a symmetric grid.
fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let last = (n - 1) as f64;
    (0..n).map(|j| lo + (hi - lo) * (j as f64 / last)).collect()
}

/// Prior weights on `nodes`, normalised in log space so that the largest is 1
/// (this keeps a very narrow prior from underflowing at every node).
fn prior_weights(prior: &NormalPrior, nodes: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let ln: Vec<f64> = nodes.iter().map(|&t| prior.ln_density(t)).collect();
    let max = ln.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    // −1e250: finite floor, so sums with log-likelihoods cannot reach −inf.
    let ln: Vec<f64> = ln.iter().map(|&x| (x - max).max(-1e250)).collect();
    let w = ln.iter().map(|&x| x.exp()).collect();
    (w, ln)
}

// ---------------------------------------------------------------------------
// EAP
// ---------------------------------------------------------------------------

/// Expected a posteriori estimator (Bock & Mislevy 1982): the posterior mean of θ
/// under a normal prior, by quadrature on a fixed, evenly spaced grid; the SE is
/// the posterior standard deviation.
///
/// `Eap::new(prior)` uses 61 points on [−6, 6] (as catR's default quadrature);
/// `Default` is N(0, 1) on that grid. Nodes and prior weights are computed once
/// here, and small grids (≤ 256 points) need no allocation per estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Eap {
    prior: NormalPrior,
    nodes: Vec<f64>,
    step: f64,
    prior_w: Vec<f64>,
    prior_ln: Vec<f64>,
}

impl Eap {
    /// EAP with `prior` on 61 points over [−6, 6].
    pub fn new(prior: NormalPrior) -> Eap {
        Eap::with_grid(prior, 61, THETA_MIN, THETA_MAX)
    }

    /// EAP with `prior` on `points` evenly spaced nodes over `[lo, hi]`.
    ///
    /// Never fails: `points` below 2 is raised to 2, and a range that is not finite
    /// or not increasing is replaced by [−6, 6]. Estimates lie within `[lo, hi]`.
    pub fn with_grid(prior: NormalPrior, points: usize, lo: f64, hi: f64) -> Eap {
        let prior = prior.sanitized();
        let points = points.max(2);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite() {
            (lo, hi)
        } else {
            (THETA_MIN, THETA_MAX)
        };
        let nodes = linspace(lo, hi, points);
        let step = (hi - lo) / (points - 1) as f64;
        let (prior_w, prior_ln) = prior_weights(&prior, &nodes);
        Eap {
            prior,
            nodes,
            step,
            prior_w,
            prior_ln,
        }
    }

    /// The (sanitised) prior.
    pub fn prior(&self) -> NormalPrior {
        self.prior
    }

    /// The quadrature nodes.
    pub fn nodes(&self) -> &[f64] {
        &self.nodes
    }

    fn lo(&self) -> f64 {
        self.nodes[0]
    }

    fn hi(&self) -> f64 {
        self.nodes[self.nodes.len() - 1]
    }

    fn prior_estimate(&self) -> Estimate {
        Estimate {
            theta: self.prior.mean.clamp(self.lo(), self.hi()),
            se: self.prior.sd,
        }
    }
}

impl Default for Eap {
    fn default() -> Self {
        Eap::new(NormalPrior::default())
    }
}

impl Eap {
    /// Mean and SD of the grid posterior `post` (the prior estimate if they are
    /// not finite). Two passes (mean, then centred second moment) avoid the
    /// cancellation of E[θ²] − E[θ]² when the posterior is narrow.
    fn moments(&self, post: &[f64]) -> Estimate {
        let total: f64 = post.iter().sum();
        let mean = post
            .iter()
            .zip(&self.nodes)
            .map(|(w, t)| w * t)
            .sum::<f64>()
            / total;
        let var = post
            .iter()
            .zip(&self.nodes)
            .map(|(w, t)| w * (t - mean) * (t - mean))
            .sum::<f64>()
            / total;
        if !(mean.is_finite() && var.is_finite()) {
            return self.prior_estimate();
        }
        Estimate {
            theta: mean.clamp(self.lo(), self.hi()),
            se: var.max(0.0).sqrt(),
        }
    }

    /// A running posterior with no answer yet, to be extended one answer at a
    /// time (see [`Posterior`]).
    pub fn posterior(&self) -> Posterior<'_> {
        Posterior {
            eap: self,
            post: self.prior_w.clone(),
            answered: 0,
            underflowed: false,
        }
    }
}

impl Estimator for Eap {
    fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate {
        if responses(bank, items, answers).next().is_none() {
            return self.prior_estimate();
        }
        with_scratch(self.nodes.len(), |post| {
            let prior = Some((self.prior_w.as_slice(), self.prior_ln.as_slice()));
            if !grid_posterior(bank, items, answers, &self.nodes, self.step, prior, post) {
                return self.prior_estimate();
            }
            self.moments(post)
        })
    }

    fn as_eap(&self) -> Option<&Eap> {
        Some(self)
    }
}

/// An EAP posterior kept across the answers of one test, each answer
/// multiplied in once: a simulation's examinee pays one item per step instead
/// of the whole test so far. Its estimates are bit-identical to
/// [`Eap::estimate`] on the same answers, because the multiplications and
/// rescalings are the same operations in the same order; when the running
/// product underflows (where `Eap::estimate` turns to log space) it hands the
/// answers to `Eap::estimate`.
#[derive(Debug, Clone)]
pub struct Posterior<'a> {
    eap: &'a Eap,
    post: Vec<f64>,
    answered: usize,
    underflowed: bool,
}

impl Posterior<'_> {
    /// Multiplies in the answer `score` to item `item` (skipped, as
    /// [`Estimator::estimate`] skips it, when either is out of range).
    pub fn push(&mut self, bank: &ItemBank, item: usize, score: u8) {
        if item >= bank.len() || score > bank.max_score(item) {
            return;
        }
        self.answered += 1;
        if self.underflowed {
            return;
        }
        let max = bank.multiply_grid(item, score, &mut self.post, self.eap.lo(), self.eap.step);
        if max < RESCALE_BELOW {
            if max > GIVE_UP_BELOW {
                let scale = 1.0 / max;
                self.post.iter_mut().for_each(|p| *p *= scale);
            } else {
                self.underflowed = true;
            }
        }
    }

    /// The estimate from the answers pushed so far, which must be `items` and
    /// `answers` (used only when the running product underflowed).
    pub fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate {
        if self.answered == 0 {
            return self.eap.prior_estimate();
        }
        let total: f64 = self.post.iter().sum();
        if self.underflowed || !(total.is_finite() && total > 0.0) {
            return self.eap.estimate(bank, items, answers);
        }
        self.eap.moments(&self.post)
    }
}

// ---------------------------------------------------------------------------
// Modal estimators (MAP, MLE)
// ---------------------------------------------------------------------------

/// Spacing of the coarse scan that locates the global mode for 3PL/4PL items.
const SCAN_STEP: f64 = 0.25;
/// Number of scan nodes on [−6, 6].
const SCAN_POINTS: usize = 49;
/// Scan nodes −6, −5.75, …, 6 (multiples of 0.25: exact in binary).
const SCAN_NODES: [f64; SCAN_POINTS] = {
    let mut nodes = [0.0; SCAN_POINTS];
    let mut j = 0;
    while j < SCAN_POINTS {
        nodes[j] = THETA_MIN + SCAN_STEP * j as f64;
        j += 1;
    }
    nodes
};
/// Scan peaks lower than the best by more than this factor are not refined: the
/// objective rises between two nodes by at most about I·h²/8 in log units (I the
/// test information, h the node spacing), far less than ln 100 ≈ 4.6 for tests
/// of realistic information.
const CANDIDATE_RATIO: f64 = 0.01;
/// At most this many scan peaks are refined.
const MAX_CANDIDATES: usize = 4;
/// Newton/bisection stops when the step falls below this.
const TOLERANCE: f64 = 1e-10;
/// Iteration cap for the safeguarded Newton search (bisection alone needs ~40).
const MAX_ITERATIONS: usize = 200;

/// A normal prior as the modal search needs it: mean, precision 1/sd², and its
/// weights on the scan grid.
struct ModalPrior<'a> {
    mean: f64,
    precision: f64,
    scan_w: &'a [f64],
    scan_ln: &'a [f64],
}

/// Safeguarded Newton–Raphson for a root of the score `g` inside a bracket with
/// g(lo) > 0 > g(hi) ("rtsafe", Press et al., Numerical Recipes §9.4): a Newton step
/// is taken when it stays inside the bracket and shrinks fast enough, bisection
/// otherwise. The bracket always holds a sign change from + to −, i.e. a local
/// maximum of the objective, so this converges to one; the result stays in the
/// bracket whatever `f` returns (NaN included).
fn rtsafe(f: &impl Fn(f64) -> (f64, f64), mut lo: f64, mut hi: f64, start: f64) -> f64 {
    let mut x = if start > lo && start < hi {
        start
    } else {
        0.5 * (lo + hi)
    };
    let mut dx_old = hi - lo;
    let mut dx = dx_old;
    for _ in 0..MAX_ITERATIONS {
        let (g, h) = f(x);
        if g == 0.0 {
            return x;
        }
        if g > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - g / h;
        let newton_ok =
            h < 0.0 && newton > lo && newton < hi && (2.0 * (g / h)).abs() <= dx_old.abs();
        dx_old = dx;
        if newton_ok {
            dx = newton - x;
            x = newton;
        } else {
            dx = 0.5 * (hi - lo);
            x = lo + dx;
        }
        if dx.abs() < TOLERANCE || hi - lo < TOLERANCE {
            return x;
        }
    }
    x
}

/// Maximises a concave objective on [lo, hi] given its derivatives.
fn maximize_concave(f: &impl Fn(f64) -> (f64, f64), lo: f64, hi: f64, start: f64) -> f64 {
    // The objective's slope at the ends says whether the maximum is a bound.
    // NaN (unchecked parameters) also stops at a bound: finite whatever happens.
    let g_lo = f(lo).0;
    if g_lo.is_nan() || g_lo <= 0.0 {
        return lo;
    }
    let g_hi = f(hi).0;
    if g_hi.is_nan() || g_hi >= 0.0 {
        return hi;
    }
    rtsafe(f, lo, hi, start)
}

/// From the best scan node `t`, climbs to the nearby local maximum.
fn refine_from_scan(f: &impl Fn(f64) -> (f64, f64), t: f64) -> f64 {
    let (g, h) = f(t);
    let dir = if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        return t;
    };
    let far = (t + dir * SCAN_STEP).clamp(THETA_MIN, THETA_MAX);
    if far == t {
        // Increasing into the bound.
        return t;
    }
    let newton = t - g / h;
    let bracket = |near: f64, x: f64| if dir > 0.0 { (near, x) } else { (x, near) };
    if f(far).0 * dir < 0.0 {
        let (lo, hi) = bracket(t, far);
        return rtsafe(f, lo, hi, newton);
    }
    // Rare: the slope does not change sign across one scan step although `far`
    // is no better than `t`, so the local maximum hides in between; look closer.
    let mut near = t;
    for j in 1..8 {
        let x = t + dir * SCAN_STEP * (j as f64 / 8.0);
        if f(x).0 * dir < 0.0 {
            let (lo, hi) = bracket(near, x);
            return rtsafe(f, lo, hi, newton);
        }
        near = x;
    }
    t
}

/// Mode of the log-likelihood (plus the log-prior, if any) on [−6, 6].
///
/// With only 1PL/2PL items the objective is concave (strictly so with a prior or a
/// mixed pattern), so a bracketed Newton search on the whole range finds the global
/// maximum. 3PL/4PL likelihoods can be multimodal (Samejima 1973; Yen, Burket &
/// Sykes 1991), so the global maximum is first located on a 0.25-spaced scan and
/// then refined locally.
fn find_mode(
    bank: &ItemBank,
    items: &[usize],
    answers: &[u8],
    prior: Option<&ModalPrior<'_>>,
) -> f64 {
    let f = |theta: f64| {
        let (mut g, mut h) = (0.0, 0.0);
        for (i, u) in responses(bank, items, answers) {
            let (l1, l2) = bank.loglik_derivs(i, theta, u);
            g += l1;
            h += l2;
        }
        if let Some(p) = prior {
            g -= (theta - p.mean) * p.precision;
            h -= p.precision;
        }
        (g, h)
    };
    let start = prior.map_or(0.0, |p| p.mean.clamp(THETA_MIN, THETA_MAX));
    if responses(bank, items, answers).all(|(i, _)| bank.is_log_concave(i)) {
        return maximize_concave(&f, THETA_MIN, THETA_MAX, start);
    }
    let mut post = [0.0f64; SCAN_POINTS];
    let grid_prior = prior.map(|p| (p.scan_w, p.scan_ln));
    if !grid_posterior(
        bank,
        items,
        answers,
        &SCAN_NODES,
        SCAN_STEP,
        grid_prior,
        &mut post,
    ) {
        return maximize_concave(&f, THETA_MIN, THETA_MAX, start);
    }
    // The best node can sit in the wrong basin when two peaks are close in height
    // and one falls between nodes, so every scan peak within a factor
    // CANDIDATE_RATIO of the best is refined and the refined modes are compared.
    let mut best = 0;
    for (j, &p) in post.iter().enumerate() {
        if p > post[best] {
            best = j;
        }
    }
    let floor = post[best] * CANDIDATE_RATIO;
    let mut candidates = [0usize; MAX_CANDIDATES];
    let mut count = 0;
    candidates[0] = best;
    count += 1;
    for j in 0..SCAN_POINTS {
        let left = if j > 0 {
            post[j - 1]
        } else {
            f64::NEG_INFINITY
        };
        let right = if j + 1 < SCAN_POINTS {
            post[j + 1]
        } else {
            f64::NEG_INFINITY
        };
        // `> left` (not >=) counts a flat top once.
        let peak = post[j] > left && post[j] >= right && post[j] >= floor;
        if peak && j != best && count < MAX_CANDIDATES {
            candidates[count] = j;
            count += 1;
        }
    }
    if count == 1 {
        return refine_from_scan(&f, SCAN_NODES[best]);
    }
    let objective = |theta: f64| {
        let ll: f64 = responses(bank, items, answers)
            .map(|(i, u)| bank.ln_likelihood(i, theta, u))
            .sum();
        match prior {
            Some(p) => ll - 0.5 * p.precision * (theta - p.mean) * (theta - p.mean),
            None => ll,
        }
    };
    let mut winner = refine_from_scan(&f, SCAN_NODES[best]);
    let mut top = objective(winner);
    for &j in &candidates[1..count] {
        let theta = refine_from_scan(&f, SCAN_NODES[j]);
        let value = objective(theta);
        if value > top {
            winner = theta;
            top = value;
        }
    }
    winner
}

/// Maximum a posteriori (Bayes modal) estimator under a normal prior, on [−6, 6].
///
/// The mode is found by safeguarded Newton–Raphson (with a global scan first for
/// 3PL/4PL items, see the module notes); the SE is 1/√(I(θ̂) + 1/sd²), with I the
/// test (Fisher) information of the answered items. `Default` is N(0, 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    prior: NormalPrior,
    scan_w: [f64; SCAN_POINTS],
    scan_ln: [f64; SCAN_POINTS],
}

impl Map {
    /// MAP with `prior` (sanitised, see [`NormalPrior::sanitized`]).
    pub fn new(prior: NormalPrior) -> Map {
        let prior = prior.sanitized();
        let (w, ln) = prior_weights(&prior, &SCAN_NODES);
        let mut scan_w = [0.0; SCAN_POINTS];
        let mut scan_ln = [0.0; SCAN_POINTS];
        scan_w.copy_from_slice(&w);
        scan_ln.copy_from_slice(&ln);
        Map {
            prior,
            scan_w,
            scan_ln,
        }
    }

    /// The (sanitised) prior.
    pub fn prior(&self) -> NormalPrior {
        self.prior
    }
}

impl Default for Map {
    fn default() -> Self {
        Map::new(NormalPrior::default())
    }
}

impl Estimator for Map {
    fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate {
        let precision = 1.0 / (self.prior.sd * self.prior.sd);
        if responses(bank, items, answers).next().is_none() {
            return Estimate {
                theta: self.prior.mean.clamp(THETA_MIN, THETA_MAX),
                se: self.prior.sd,
            };
        }
        let prior = ModalPrior {
            mean: self.prior.mean,
            precision,
            scan_w: &self.scan_w,
            scan_ln: &self.scan_ln,
        };
        let theta = find_mode(bank, items, answers, Some(&prior));
        let info = answered_information(bank, items, answers, theta);
        // info >= 0 and precision > 0, so the SE is finite (0 only if info overflowed).
        Estimate {
            theta,
            se: 1.0 / (info + precision).sqrt(),
        }
    }
}

/// θ with the SE of the likelihood estimators (MLE, WLE): 1/√I(θ), capped at
/// [`Mle::SE_CAP`] when the information is (nearly) zero.
fn with_information_se(bank: &ItemBank, items: &[usize], answers: &[u8], theta: f64) -> Estimate {
    let info = answered_information(bank, items, answers, theta);
    let se = if info > 0.0 {
        (1.0 / info.sqrt()).min(Mle::SE_CAP)
    } else {
        Mle::SE_CAP
    };
    Estimate { theta, se }
}

/// Maximum likelihood estimator, bounded to [−6, 6].
///
/// Rule for the patterns whose likelihood has no interior maximum: every answer
/// at its item's highest score (all correct, for dichotomous items) gives
/// θ = +6, every answer at score 0 (all wrong) gives θ = −6 (the bounds, as catR
/// and catsim do for dichotomous items). Any other pattern of 1PL/2PL and
/// polytomous items has an interior maximum (the likelihood vanishes at both
/// ends); 3PL/4PL patterns may still run into a bound. The SE is 1/√I(θ̂), capped at [`Mle::SE_CAP`] when the information is
/// (nearly) zero; with no answer the estimate is θ = 0 with se = `SE_CAP`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Mle {
    _private: (),
}

impl Mle {
    /// The largest SE reported: the half-width of the θ range, meaning "the
    /// answers so far say nothing useful" (keeps the value finite for stop rules).
    pub const SE_CAP: f64 = 6.0;

    /// The bounded MLE (same as `Mle::default()`).
    pub fn new() -> Mle {
        Mle::default()
    }
}

impl Estimator for Mle {
    fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate {
        let mut any = false;
        let mut all_top = true;
        let mut all_bottom = true;
        for (i, u) in responses(bank, items, answers) {
            any = true;
            all_top &= u == bank.max_score(i);
            all_bottom &= u == 0;
        }
        if !any {
            return Estimate {
                theta: 0.0,
                se: Mle::SE_CAP,
            };
        }
        let theta = if all_top {
            THETA_MAX
        } else if all_bottom {
            THETA_MIN
        } else {
            find_mode(bank, items, answers, None)
        };
        with_information_se(bank, items, answers, theta)
    }
}

/// Warm's (1989) weighted likelihood estimator, bounded to [−6, 6].
///
/// θ̂ solves l′(θ) + J(θ) / (2 I(θ)) = 0, where l′ is the score of the answers, I the
/// test information and J = Σ P′P″ / (P(1 − P)) (the 4PL form used by catR). Warm's
/// correction removes the O(1/n) bias of the MLE and, for 1PL/2PL items, keeps the
/// estimate finite for all-correct and all-wrong patterns (the weight is then
/// Jeffreys' prior √I). Roots are located on a 0.25-spaced scan and refined by
/// bisection with secant steps; when several exist (3PL/4PL), the one with the
/// largest weighted log-likelihood ln L + ½ ln I wins. When the equation has no
/// root in range (3PL/4PL patterns whose correction cannot stop the drift), the
/// estimate is the bound the score points to. The SE is 1/√I(θ̂), capped at
/// [`Mle::SE_CAP`]; with no answer, θ = 0 and se = `SE_CAP`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Wle {
    _private: (),
}

impl Wle {
    /// The weighted likelihood estimator (same as `Wle::default()`).
    pub fn new() -> Wle {
        Wle::default()
    }
}

/// Warm's estimating function l′ + J / (2I) at θ, and I.
fn warm_score(bank: &ItemBank, items: &[usize], answers: &[u8], theta: f64) -> (f64, f64) {
    let (mut score, mut info, mut j) = (0.0, 0.0, 0.0);
    for (i, u) in responses(bank, items, answers) {
        let (l1, ii, jj) = bank.warm_terms(i, theta, u);
        score += l1;
        info += ii;
        j += jj;
    }
    // With the information underflowed the correction is meaningless: drop it.
    let g = if info > 0.0 {
        score + j / (2.0 * info)
    } else {
        score
    };
    (g, info)
}

/// Root of a function that is positive at `lo` and not positive at `hi`
/// (Illinois variant of regula falsi, which never leaves the bracket).
fn bracketed_root(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let (mut f_lo, mut f_hi) = (f(lo), f(hi));
    let mut side = 0i8;
    for _ in 0..MAX_ITERATIONS {
        let x = if f_lo.is_finite() && f_hi.is_finite() && f_lo != f_hi {
            (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        } else {
            0.5 * (lo + hi)
        };
        let x = if x > lo && x < hi { x } else { 0.5 * (lo + hi) };
        let fx = f(x);
        if fx.is_nan() || fx == 0.0 || hi - lo < TOLERANCE {
            return x;
        }
        if fx > 0.0 {
            lo = x;
            f_lo = fx;
            if side == 1 {
                f_hi *= 0.5;
            }
            side = 1;
        } else {
            hi = x;
            f_hi = fx;
            if side == -1 {
                f_lo *= 0.5;
            }
            side = -1;
        }
    }
    0.5 * (lo + hi)
}

impl Estimator for Wle {
    fn estimate(&self, bank: &ItemBank, items: &[usize], answers: &[u8]) -> Estimate {
        if responses(bank, items, answers).next().is_none() {
            return Estimate {
                theta: 0.0,
                se: Mle::SE_CAP,
            };
        }
        let g = |theta: f64| warm_score(bank, items, answers, theta).0;
        let objective = |theta: f64| {
            let ll: f64 = responses(bank, items, answers)
                .map(|(i, u)| bank.ln_likelihood(i, theta, u))
                .sum();
            let info = answered_information(bank, items, answers, theta);
            ll + 0.5 * info.max(f64::MIN_POSITIVE).ln()
        };
        let mut scan = [0.0f64; SCAN_POINTS];
        for (v, &t) in scan.iter_mut().zip(&SCAN_NODES) {
            *v = g(t);
        }
        // Candidates: each downward crossing (a local maximum of the weighted
        // likelihood), plus a bound the score runs into.
        let mut best: Option<(f64, f64)> = None;
        let mut consider = |theta: f64| {
            let value = objective(theta);
            if best.is_none_or(|(_, top)| value > top) {
                best = Some((theta, value));
            }
        };
        if scan[0] <= 0.0 {
            consider(THETA_MIN);
        }
        if scan[SCAN_POINTS - 1] >= 0.0 {
            consider(THETA_MAX);
        }
        for j in 0..SCAN_POINTS - 1 {
            if scan[j] > 0.0 && scan[j + 1] <= 0.0 {
                consider(bracketed_root(g, SCAN_NODES[j], SCAN_NODES[j + 1]));
            }
        }
        let theta = best.map_or(0.0, |(t, _)| t).clamp(THETA_MIN, THETA_MAX);
        with_information_se(bank, items, answers, theta)
    }
}

/// The estimators by name, for configuration files, requests and command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimatorKind {
    /// [`Eap`] (the default).
    Eap,
    /// [`Map`].
    Map,
    /// [`Mle`].
    Mle,
    /// [`Wle`].
    Wle,
}

impl EstimatorKind {
    /// Every kind, in documentation order.
    pub const ALL: [EstimatorKind; 4] = [
        EstimatorKind::Eap,
        EstimatorKind::Map,
        EstimatorKind::Mle,
        EstimatorKind::Wle,
    ];

    /// The lowercase name (`eap`, `map`, `mle`, `wle`).
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Eap => "eap",
            EstimatorKind::Map => "map",
            EstimatorKind::Mle => "mle",
            EstimatorKind::Wle => "wle",
        }
    }

    /// The estimator; `prior` is used by EAP and MAP only.
    pub fn build(self, prior: NormalPrior) -> Box<dyn Estimator> {
        match self {
            EstimatorKind::Eap => Box::new(Eap::new(prior)),
            EstimatorKind::Map => Box::new(Map::new(prior)),
            EstimatorKind::Mle => Box::new(Mle::new()),
            EstimatorKind::Wle => Box::new(Wle::new()),
        }
    }
}

impl std::fmt::Display for EstimatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EstimatorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        EstimatorKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown estimator {s:?} (expected eap, map, mle or wle)"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::ItemParams;
    use super::*;
    use proptest::prelude::*;

    fn bank_of(params: &[(f64, f64, f64, f64)]) -> ItemBank {
        ItemBank::without_concepts(
            params
                .iter()
                .map(|&(a, b, c, d)| ItemParams::new(a, b, c, d).unwrap())
                .collect(),
        )
    }

    fn rasch(bs: &[f64]) -> ItemBank {
        bank_of(&bs.iter().map(|&b| (1.0, b, 0.0, 1.0)).collect::<Vec<_>>())
    }

    fn four_pl() -> ItemBank {
        bank_of(&[
            (1.32, -0.63, 0.17, 0.87),
            (1.07, 0.18, 0.10, 0.93),
            (0.84, -0.84, 0.19, 1.0),
        ])
    }

    fn all(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    #[test]
    fn rasch_mle_reference() {
        let bank = rasch(&[-2.1851, -0.2897194]);
        let e = Mle::default().estimate(&bank, &[0, 1], &[1, 0]);
        assert!((e.theta - -1.237413).abs() < 1e-4, "{e:?}");
        // For the Rasch model the MLE solves Σ P = number correct.
        let sum_p: f64 = (0..2).map(|i| bank.probability(i, e.theta)).sum();
        assert!((sum_p - 1.0).abs() < 1e-9);
        let info = bank.test_information(&[0, 1], e.theta);
        assert!((e.se - 1.0 / info.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn four_pl_references() {
        let bank = four_pl();
        let (items, answers) = (all(3), [0, 1, 0]);
        let mle = Mle::default().estimate(&bank, &items, &answers);
        assert!((mle.theta - -1.793097).abs() < 1e-4, "MLE {mle:?}");
        let map = Map::default().estimate(&bank, &items, &answers);
        assert!((map.theta - -0.4741753).abs() < 1e-4, "MAP {map:?}");
        let info = bank.test_information(&items, map.theta);
        assert!((map.se - 1.0 / (info + 1.0).sqrt()).abs() < 1e-12);
        let eap = Eap::default().estimate(&bank, &items, &answers);
        assert!((eap.theta - -0.4567).abs() < 2e-4, "EAP {eap:?}");
        assert!(eap.se > 0.5 && eap.se < 1.0, "EAP {eap:?}");
    }

    #[test]
    fn three_pl_mle_reference() {
        let bank = bank_of(&[
            (2.225, -1.885, 0.21, 1.0),
            (1.174, -2.411, 0.212, 1.0),
            (2.104, -2.439, 0.192, 1.0),
        ]);
        let e = Mle::default().estimate(&bank, &all(3), &[1, 0, 1]);
        assert!((e.theta - -1.642307).abs() < 1e-4, "{e:?}");
    }

    /// WLE references from `shared/reference/irt_reference.py` (50-digit mpmath).
    #[test]
    fn wle_references() {
        let wle = Wle::new();
        let check = |bank: &ItemBank, answers: &[u8], want: f64| {
            let e = wle.estimate(bank, &all(answers.len()), answers);
            assert!(
                (e.theta - want).abs() < 1e-6,
                "{answers:?}: {e:?} vs {want}"
            );
            e
        };
        let rasch = rasch(&[-2.1851, -0.2897194]);
        // One right, one wrong: J vanishes at the MLE, so WLE = MLE here.
        check(&rasch, &[1, 0], -1.2374097);
        // Constant patterns stay finite with Rasch/2PL items (Warm's weight √I).
        check(&rasch, &[1, 1], 0.830720129456);
        check(&rasch, &[0, 0], -3.30553952946);
        check(&four_pl(), &[0, 1, 0], -1.11884139715);
        let three_pl = bank_of(&[
            (2.225, -1.885, 0.21, 1.0),
            (1.174, -2.411, 0.212, 1.0),
            (2.104, -2.439, 0.192, 1.0),
        ]);
        check(&three_pl, &[1, 0, 1], -1.83274186105);
        let two_pl = bank_of(&[
            (0.8, -1.0, 0.0, 1.0),
            (1.2, 0.0, 0.0, 1.0),
            (1.6, 0.5, 0.0, 1.0),
            (1.0, 1.5, 0.0, 1.0),
            (2.0, -0.5, 0.0, 1.0),
        ]);
        let e = check(&two_pl, &[1, 1, 0, 0, 1], 0.28403249712);
        assert!((e.se - 0.736694269441).abs() < 1e-6, "SE = 1/√I: {e:?}");
        check(&two_pl, &[1; 5], 2.51713770575);
        assert_eq!(
            wle.estimate(&two_pl, &[], &[]),
            Estimate {
                theta: 0.0,
                se: Mle::SE_CAP
            }
        );
    }

    #[test]
    fn estimator_kinds_by_name() {
        let bank = four_pl();
        let answers = [0, 1, 0];
        for kind in EstimatorKind::ALL {
            assert_eq!(kind.name().parse::<EstimatorKind>(), Ok(kind));
            assert_eq!(
                kind.to_string().to_uppercase().parse::<EstimatorKind>(),
                Ok(kind)
            );
            let e = kind
                .build(NormalPrior::default())
                .estimate(&bank, &all(3), &answers);
            let direct = match kind {
                EstimatorKind::Eap => Eap::default().estimate(&bank, &all(3), &answers),
                EstimatorKind::Map => Map::default().estimate(&bank, &all(3), &answers),
                EstimatorKind::Mle => Mle::new().estimate(&bank, &all(3), &answers),
                EstimatorKind::Wle => Wle::new().estimate(&bank, &all(3), &answers),
            };
            assert_eq!(e, direct);
        }
        let err = "bayes".parse::<EstimatorKind>().unwrap_err();
        assert!(err.contains("eap, map, mle or wle"), "{err}");
    }

    #[test]
    fn eap_matches_brute_force_quadrature() {
        // Plain per-node evaluation of prior × likelihood, no tricks.
        let bank = bank_of(&[
            (1.3, -1.0, 0.0, 1.0),
            (0.7, 0.4, 0.2, 1.0),
            (2.0, 1.1, 0.1, 0.9),
            (1.0, 3.0, 0.0, 1.0),
        ]);
        let answers = [1, 0, 1, 1];
        let eap = Eap::new(NormalPrior::new(0.3, 1.4));
        let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
        for &t in eap.nodes() {
            let mut w = (-0.5 * ((t - 0.3) / 1.4f64).powi(2)).exp();
            for (i, &u) in answers.iter().enumerate() {
                let p = bank.probability(i, t);
                w *= if u == 1 { p } else { 1.0 - p };
            }
            s0 += w;
            s1 += w * t;
            s2 += w * t * t;
        }
        let mean = s1 / s0;
        let sd = (s2 / s0 - mean * mean).sqrt();
        let e = eap.estimate(&bank, &all(4), &answers);
        assert!((e.theta - mean).abs() < 1e-12, "{e:?} vs {mean}");
        assert!((e.se - sd).abs() < 1e-10, "{e:?} vs {sd}");
    }

    #[test]
    fn no_answers_give_prior_or_documented_default() {
        let bank = rasch(&[0.0]);
        let prior = NormalPrior::new(0.5, 1.5);
        assert_eq!(
            Eap::new(prior).estimate(&bank, &[], &[]),
            Estimate {
                theta: 0.5,
                se: 1.5
            }
        );
        assert_eq!(
            Map::new(prior).estimate(&bank, &[], &[]),
            Estimate {
                theta: 0.5,
                se: 1.5
            }
        );
        assert_eq!(
            Mle::default().estimate(&bank, &[], &[]),
            Estimate {
                theta: 0.0,
                se: Mle::SE_CAP
            }
        );
        // Out-of-range indexes and unpaired entries are ignored, not a panic.
        assert_eq!(
            Mle::default().estimate(&bank, &[7], &[1]),
            Estimate {
                theta: 0.0,
                se: Mle::SE_CAP
            }
        );
        assert_eq!(
            Eap::new(prior).estimate(&bank, &[0], &[]),
            Estimate {
                theta: 0.5,
                se: 1.5
            }
        );
        // A prior mean beyond the grid is clamped into it.
        let far = NormalPrior::new(9.0, 1.0);
        assert_eq!(Eap::new(far).estimate(&bank, &[], &[]).theta, 6.0);
        assert_eq!(Map::new(far).estimate(&bank, &[], &[]).theta, 6.0);
    }

    #[test]
    fn mle_extreme_patterns_hit_the_bounds() {
        let bank = four_pl();
        let up = Mle::default().estimate(&bank, &all(3), &[1; 3]);
        let down = Mle::default().estimate(&bank, &all(3), &[0; 3]);
        assert_eq!(up.theta, 6.0);
        assert_eq!(down.theta, -6.0);
        assert!(up.se.is_finite() && up.se > 0.0 && up.se <= Mle::SE_CAP);
        assert!(down.se.is_finite() && down.se > 0.0 && down.se <= Mle::SE_CAP);
        // A 2PL item far from the bound has ~no information there: SE is capped.
        let bank = rasch(&[-4.0]);
        let e = Mle::default().estimate(&bank, &[0], &[1]);
        assert_eq!(
            e,
            Estimate {
                theta: 6.0,
                se: Mle::SE_CAP
            }
        );
    }

    #[test]
    fn map_and_eap_shrink_towards_the_prior() {
        let bank = rasch(&[0.0, 0.5, -0.5, 1.0]);
        let answers = [1, 1, 0, 1];
        let mle = Mle::default().estimate(&bank, &all(4), &answers).theta;
        let map = Map::default().estimate(&bank, &all(4), &answers).theta;
        let eap = Eap::default().estimate(&bank, &all(4), &answers).theta;
        assert!(mle > map && map > 0.0, "mle {mle} map {map}");
        assert!(mle > eap && eap > 0.0, "mle {mle} eap {eap}");
        // MAP with a huge sd is the MLE.
        let flat = Map::new(NormalPrior::new(0.0, 1e5))
            .estimate(&bank, &all(4), &answers)
            .theta;
        assert!((flat - mle).abs() < 1e-6, "{flat} vs {mle}");
    }

    #[test]
    fn multimodal_likelihood_finds_global_mode() {
        // Aberrant 3PL patterns whose log-likelihood has several local maxima, the
        // global one not the nearest to 0 (found by a brute-force search in Python):
        // the first has maxima near −2.42 (global), 0.92 and the bound −6; the
        // second near 0.96 and 2.51 (global).
        type Case = ([(f64, f64); 4], [u8; 4]);
        let cases: [Case; 2] = [
            (
                [(2.6, -2.8), (2.3, 1.3), (2.6, 1.0), (1.6, -1.9)],
                [1, 1, 1, 0],
            ),
            (
                [(2.3, 2.7), (2.3, -2.0), (2.8, 2.9), (1.6, -2.7)],
                [0, 1, 1, 1],
            ),
        ];
        for (params, answers) in cases {
            let bank = bank_of(&params.map(|(a, b)| (a, b, 0.25, 1.0)));
            let ll = |t: f64| -> f64 {
                (0..4)
                    .map(|i| {
                        let p = bank.probability(i, t);
                        if answers[i] == 1 {
                            p.ln()
                        } else {
                            (1.0 - p).ln()
                        }
                    })
                    .sum()
            };
            let brute = (0..=120_000)
                .map(|j| -6.0 + f64::from(j) * 1e-4)
                .max_by(|x, y| ll(*x).total_cmp(&ll(*y)))
                .unwrap();
            let e = Mle::default().estimate(&bank, &all(4), &answers);
            assert!((e.theta - brute).abs() < 1e-3, "{e:?} vs {brute}");
            assert!(ll(e.theta) >= ll(brute) - 1e-12, "{e:?} vs {brute}");
        }
    }

    #[test]
    fn extreme_items_stay_finite() {
        // Items far outside the grid answered against the odds force the log-space path.
        let bank = bank_of(&[
            (8.0, 150.0, 0.0, 1.0),
            (8.0, -150.0, 0.0, 1.0),
            (1e6, 0.0, 0.0, 1.0),
            (1.0, 0.0, 0.0, 1.0),
        ]);
        let est: [&dyn Estimator; 4] = [
            &Eap::default(),
            &Map::default(),
            &Mle::default(),
            &Eap::with_grid(NormalPrior::default(), 1000, -6.0, 6.0),
        ];
        for e in est {
            for pattern in 0..16u32 {
                let answers: Vec<u8> = (0..4).map(|k| (pattern >> k & 1) as u8).collect();
                let r = e.estimate(&bank, &all(4), &answers);
                assert!(r.theta.is_finite() && r.se.is_finite(), "{r:?}");
                assert!((-6.0..=6.0).contains(&r.theta), "{r:?}");
                assert!(r.se >= 0.0);
            }
        }
        // Right on a hopeless item: the posterior piles up at the top of the grid.
        let r = Eap::default().estimate(&bank, &[0], &[1]);
        assert!(r.theta > 5.5, "{r:?}");
        let r = Eap::default().estimate(&bank, &[1], &[0]);
        assert!(r.theta < -5.5, "{r:?}");
    }

    #[test]
    fn bad_priors_and_grids_are_sanitised() {
        let bank = rasch(&[0.0, 1.0]);
        for prior in [
            NormalPrior::new(f64::NAN, 1.0),
            NormalPrior::new(0.0, -1.0),
            NormalPrior::new(0.0, 0.0),
            NormalPrior::new(0.0, 1e-300),
        ] {
            for e in [&Eap::new(prior) as &dyn Estimator, &Map::new(prior)] {
                let r = e.estimate(&bank, &[0, 1], &[1, 0]);
                assert!(r.theta.is_finite() && r.se.is_finite(), "{prior:?} {r:?}");
            }
        }
        let e = Eap::with_grid(NormalPrior::default(), 0, 3.0, f64::NAN);
        assert_eq!(e.nodes(), &[-6.0, 6.0]);
        let e = Eap::with_grid(NormalPrior::default(), 1001, -4.0, 4.0);
        let r = e.estimate(&bank, &[0, 1], &[1, 1]);
        assert!(r.theta > 0.0 && r.theta <= 4.0);
    }

    #[test]
    fn a_running_posterior_equals_estimating_from_scratch() {
        let grm = crate::sim::generate_polytomous_bank(crate::PolyModel::Grm, 60, 5, 3);
        let long = rasch(
            &(0..400)
                .map(|i| -3.0 + 6.0 * f64::from(i) / 399.0)
                .collect::<Vec<_>>(),
        );
        // Items far outside the grid answered against the odds: the product underflows.
        let extreme = bank_of(&[
            (8.0, 150.0, 0.0, 1.0),
            (1.0, 0.0, 0.0, 1.0),
            (8.0, -150.0, 0.0, 1.0),
            (1e6, 0.0, 0.0, 1.0),
        ]);
        let cases: [(&ItemBank, Vec<u8>); 3] = [
            (&grm, (0..60).map(|i| (i * 7 % 5) as u8).collect()),
            (&long, (0..400).map(|i| u8::from(i < 230)).collect()),
            (&extreme, vec![1, 0, 0, 1]),
        ];
        for eap in [
            Eap::default(),
            Eap::with_grid(NormalPrior::new(0.5, 2.0), 300, -5.0, 7.0),
        ] {
            for (bank, answers) in &cases {
                let items: Vec<usize> = (0..answers.len()).collect();
                let mut running = eap.posterior();
                assert_eq!(
                    running.estimate(bank, &[], &[]),
                    eap.estimate(bank, &[], &[])
                );
                for k in 0..answers.len() {
                    running.push(bank, items[k], answers[k]);
                    let (i, u) = (&items[..=k], &answers[..=k]);
                    assert_eq!(
                        running.estimate(bank, i, u),
                        eap.estimate(bank, i, u),
                        "{k}"
                    );
                }
                // Out-of-range answers are skipped by both.
                running.push(bank, 9_999, 1);
                running.push(bank, 0, 99);
            }
        }
    }

    #[test]
    fn long_tests_do_not_underflow() {
        // 400 answers: the likelihood is ~1e-120 and smaller, far past underflow without rescaling.
        let bs: Vec<f64> = (0..400).map(|i| -3.0 + 6.0 * (i as f64) / 399.0).collect();
        let bank = rasch(&bs);
        let answers: Vec<u8> = bs.iter().map(|&b| u8::from(b < 0.7)).collect();
        for e in [
            &Eap::default() as &dyn Estimator,
            &Map::default(),
            &Mle::default(),
        ] {
            let r = e.estimate(&bank, &all(400), &answers);
            assert!((r.theta - 0.7).abs() < 0.3, "{r:?}");
            assert!(r.se > 0.05 && r.se < 0.2, "{r:?}");
        }
    }

    fn arb_items(
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = Vec<(f64, f64, f64, f64, bool)>> {
        proptest::collection::vec(
            (
                0.2f64..3.0,
                -4.0f64..4.0,
                0.0f64..0.35,
                0.85f64..1.0,
                any::<bool>(),
            ),
            len,
        )
    }

    proptest! {
        #[test]
        fn estimates_finite_and_bounded(rows in arb_items(0..25)) {
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, r.2, r.3)).collect::<Vec<_>>());
            let answers: Vec<u8> = rows.iter().map(|r| u8::from(r.4)).collect();
            let items = all(rows.len());
            for e in [&Eap::default() as &dyn Estimator, &Map::default(), &Mle::default(), &Wle::new()] {
                let r = e.estimate(&bank, &items, &answers);
                prop_assert!(r.theta.is_finite() && r.se.is_finite() && r.se >= 0.0, "{:?}", r);
                prop_assert!((-6.0..=6.0).contains(&r.theta), "{:?}", r);
            }
        }

        #[test]
        fn all_right_or_all_wrong_mle_at_bounds(rows in arb_items(1..12), right in any::<bool>()) {
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, r.2, r.3)).collect::<Vec<_>>());
            let answers = vec![u8::from(right); rows.len()];
            let r = Mle::default().estimate(&bank, &all(rows.len()), &answers);
            prop_assert_eq!(r.theta, if right { 6.0 } else { -6.0 });
            prop_assert!(r.se.is_finite() && r.se > 0.0 && r.se <= Mle::SE_CAP);
        }

        #[test]
        fn modal_estimates_reach_the_global_maximum(rows in arb_items(2..10), flat in any::<bool>()) {
            // 3PL/4PL objectives may be multimodal: compare with a fine brute-force search.
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, r.2, r.3)).collect::<Vec<_>>());
            // A mixed pattern, so that the MLE is not ruled to a bound.
            let answers: Vec<u8> = rows.iter().enumerate().map(|(i, r)| u8::from(if i < 2 { i == 0 } else { r.4 })).collect();
            let objective = |t: f64| -> f64 {
                let ll: f64 = (0..rows.len())
                    .map(|i| {
                        let p = bank.probability(i, t);
                        if answers[i] == 1 { p.ln() } else { (1.0 - p).ln() }
                    })
                    .sum();
                if flat { ll } else { ll - 0.5 * t * t }
            };
            let brute = (0..=12_000).map(|j| objective(-6.0 + f64::from(j) * 1e-3)).fold(f64::NEG_INFINITY, f64::max);
            let est: &dyn Estimator = if flat { &Mle::default() } else { &Map::default() };
            let t = est.estimate(&bank, &all(rows.len()), &answers).theta;
            prop_assert!(objective(t) >= brute - 1e-6, "{} at {} < {}", objective(t), t, brute);
        }

        #[test]
        fn map_is_a_stationary_point(rows in arb_items(0..15)) {
            // For 2PL items, the MAP is the unique root of the posterior score.
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, 0.0, 1.0)).collect::<Vec<_>>());
            let answers: Vec<u8> = rows.iter().map(|r| u8::from(r.4)).collect();
            let t = Map::default().estimate(&bank, &all(rows.len()), &answers).theta;
            let score: f64 = (0..rows.len())
                .map(|i| rows[i].0 * (f64::from(answers[i]) - bank.probability(i, t)))
                .sum::<f64>() - t;
            prop_assert!(score.abs() < 1e-8, "score {} at {}", score, t);
        }

        #[test]
        fn theta_rises_with_number_correct(bs in proptest::collection::vec(-3.0f64..3.0, 1..30), seed in any::<u64>()) {
            // Rasch: the number correct is sufficient, so θ̂ rises with it whatever
            // items are right (strictly for the Bayesian estimators and WLE).
            let n = bs.len();
            let bank = rasch(&bs);
            let order: Vec<usize> = {
                let mut o = all(n);
                o.sort_by_key(|&i| (i as u64).wrapping_mul(seed | 1).rotate_left(17));
                o
            };
            for (name, est) in [("eap", &Eap::default() as &dyn Estimator), ("map", &Map::default()), ("mle", &Mle::new()), ("wle", &Wle::new())] {
                let mut last = f64::NEG_INFINITY;
                for right in 0..=n {
                    let mut answers = vec![0; n];
                    for &i in &order[..right] {
                        answers[i] = 1;
                    }
                    let t = est.estimate(&bank, &all(n), &answers).theta;
                    let strict = name != "mle" && right > 0;
                    prop_assert!(if strict { t > last } else { t >= last }, "{} with {} correct: {} after {}", name, right, t, last);
                    last = t;
                }
            }
        }

        #[test]
        fn wle_solves_warms_equation(rows in arb_items(1..15)) {
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, 0.0, 1.0)).collect::<Vec<_>>());
            let answers: Vec<u8> = rows.iter().map(|r| u8::from(r.4)).collect();
            let items = all(rows.len());
            let t = Wle::new().estimate(&bank, &items, &answers).theta;
            // 2PL, written out: Σ a(u − P) + Σ a³P(1−P)(1−2P) / (2 Σ a²P(1−P)) = 0.
            let (mut score, mut j, mut info) = (0.0, 0.0, 0.0);
            for (i, r) in rows.iter().enumerate() {
                let p = bank.probability(i, t);
                score += r.0 * (f64::from(answers[i]) - p);
                j += r.0.powi(3) * p * (1.0 - p) * (1.0 - 2.0 * p);
                info += r.0 * r.0 * p * (1.0 - p);
            }
            if t.abs() < 6.0 {
                prop_assert!((score + j / (2.0 * info)).abs() < 1e-7, "{} at {}", score + j / (2.0 * info), t);
            }
        }

        #[test]
        fn mirrored_patterns_give_mirrored_theta(rows in arb_items(0..25)) {
            let bank = bank_of(&rows.iter().map(|r| (r.0, r.1, 0.0, 1.0)).collect::<Vec<_>>());
            let mirror = bank_of(&rows.iter().map(|r| (r.0, -r.1, 0.0, 1.0)).collect::<Vec<_>>());
            let answers: Vec<u8> = rows.iter().map(|r| u8::from(r.4)).collect();
            let flipped: Vec<u8> = answers.iter().map(|u| 1 - u).collect();
            let items = all(rows.len());
            for est in [&Eap::default() as &dyn Estimator, &Map::default(), &Mle::new(), &Wle::new()] {
                let x = est.estimate(&bank, &items, &answers);
                let y = est.estimate(&mirror, &items, &flipped);
                prop_assert!((x.theta + y.theta).abs() < 1e-7, "{:?} vs {:?}", x, y);
                prop_assert!((x.se - y.se).abs() < 1e-7, "{:?} vs {:?}", x, y);
            }
        }
    }
}
