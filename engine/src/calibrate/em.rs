//! The EM driver: item states, the E-step (posteriors and expected counts),
//! the M-step over items, and the standard errors at the solution.

use super::free::{Cholesky, Free, MAX_DIM, m_step_item, start_values};
use super::kernel::{self, EBlock, Scores};
use super::{
    Calibration, Config, DataError, GRID_EDGE, ItemSpec, LATENT_SD, Model, Outcome, Responses,
    Skip, StdErrors,
};
use crate::item::Item;
use crate::poly::MAX_CATEGORIES;
use rayon::prelude::*;

/// The most memory the blocks' partial counts may take.
const PARTIAL_BYTES: usize = 64 << 20;
/// Length of the slices of the table that the threads add up.
const SLICE: usize = 4096;

/// The state of one item during EM.
#[derive(Debug, Clone)]
enum State {
    Free(Free),
    Fixed(Item),
    Skipped(Skip),
}

pub(super) struct Em<'d> {
    data: &'d Responses,
    config: Config,
    /// The run's threads, started once: the E-step's blocks, the items of the
    /// M-step and the standard errors are shared out among them.
    pool: rayon::ThreadPool,
    nodes: Vec<f64>,
    /// Length of a row over the nodes: Q padded with zeros (see [`kernel`]).
    stride: usize,
    /// Normalised latent weights at the nodes (zero at the padding).
    prior: Vec<f64>,
    latent: (f64, f64),
    latent_free: (bool, bool),
    states: Vec<State>,
    /// Item i's block of `table` and `counts` starts at `offset[i]` (cats rows).
    offset: Vec<usize>,
    /// Person p's responses to items not skipped, as the starts of their rows
    /// in `table`: `rows[row_start[p]..row_start[p + 1]]`.
    row_start: Vec<usize>,
    rows: Vec<u32>,
    /// P_ik(θ_q), by item, category, node.
    table: Vec<f64>,
    /// Expected counts r_ikq, same layout.
    counts: Vec<f64>,
    /// Persons are cut into this many blocks, each summing its own counts into
    /// its part of `partial` (the sums then added in block order): a fixed
    /// number, so results do not depend on the threads.
    blocks: usize,
    /// Each block's counts, `blocks` × the table's length.
    partial: Vec<f64>,
    /// Each item's respondents: (person, score), by person.
    by_item: Vec<Vec<(u32, u8)>>,
    /// Posterior weights, a row per person.
    post: Vec<f64>,
    /// Each person's marginal log-likelihood.
    loglik: Vec<f64>,
    /// Whether a person has any response used.
    active: Vec<bool>,
}

impl<'d> Em<'d> {
    pub(super) fn new(
        data: &'d Responses,
        specs: &[ItemSpec],
        config: &Config,
    ) -> Result<Em<'d>, DataError> {
        if specs.len() != data.items {
            return Err(DataError::Specs {
                items: data.items,
                specs: specs.len(),
            });
        }
        if config.quadrature < 5 || config.quadrature > 1001 {
            return Err(DataError::Config("quadrature must be 5 to 1001 points"));
        }
        if !(config.tolerance > 0.0 && config.tolerance.is_finite()) {
            return Err(DataError::Config("tolerance must be a finite number > 0"));
        }
        let (alpha, beta) = config.c_prior;
        if !(alpha >= 1.0 && beta >= 1.0 && alpha.is_finite() && beta.is_finite()) {
            return Err(DataError::Config("the c prior needs α ≥ 1 and β ≥ 1"));
        }
        let mut by_item: Vec<Vec<(u32, u8)>> = vec![Vec::new(); data.items];
        for p in 0..data.persons {
            for &(i, s) in data.person(p) {
                by_item[i as usize].push((p as u32, s));
            }
        }
        let mut states = Vec::with_capacity(data.items);
        for (i, (spec, resp)) in specs.iter().zip(&by_item).enumerate() {
            states.push(initial_state(i, spec, resp)?);
        }
        let q_len = config.quadrature;
        let nodes: Vec<f64> = (0..q_len)
            .map(|q| -GRID_EDGE + 2.0 * GRID_EDGE * q as f64 / (q_len - 1) as f64)
            .collect();
        let stride = kernel::padded(q_len);
        let mut offset = Vec::with_capacity(data.items + 1);
        let mut at = 0;
        for s in &states {
            offset.push(at);
            at += stride * cats_of(s);
        }
        offset.push(at);
        if u32::try_from(at).is_err() {
            return Err(DataError::Config(
                "too many items and categories for the quadrature",
            ));
        }
        let mut row_start = Vec::with_capacity(data.persons + 1);
        let mut rows = Vec::with_capacity(data.len());
        row_start.push(0);
        for p in 0..data.persons {
            for &(i, s) in data.person(p) {
                let i = i as usize;
                if !matches!(states[i], State::Skipped(_)) {
                    rows.push((offset[i] + s as usize * stride) as u32);
                }
            }
            row_start.push(rows.len());
        }
        let anchored = states.iter().any(|s| matches!(s, State::Fixed(_)));
        let slopes_free = states
            .iter()
            .any(|s| matches!(s, State::Free(f) if f.has_slope()));
        let latent_free = (anchored, anchored || !slopes_free);
        let active = row_start.windows(2).map(|w| w[1] > w[0]).collect();
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
            t => t,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|t| format!("calibrate-{t}"))
            .build()
            .map_err(|_| DataError::Config("could not start the calibration's threads"))?;
        // Up to 16 blocks, within 64 MiB of partial counts.
        let blocks = (PARTIAL_BYTES / (at.max(1) * 8))
            .clamp(1, 16)
            .min(data.persons.max(1));
        let mut em = Em {
            data,
            config: config.clone(),
            pool,
            prior: vec![0.0; stride],
            nodes,
            stride,
            latent: (0.0, 1.0),
            latent_free,
            states,
            offset,
            row_start,
            rows,
            table: vec![0.0; at],
            counts: vec![0.0; at],
            blocks,
            partial: vec![0.0; blocks * at],
            by_item,
            post: vec![0.0; data.persons * stride],
            loglik: vec![0.0; data.persons],
            active,
        };
        em.set_prior();
        for i in 0..em.states.len() {
            em.fill_table(i);
        }
        Ok(em)
    }

    /// Every free item parameter, then the latent mean and SD.
    pub(super) fn params(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .states
            .iter()
            .filter_map(|s| match s {
                State::Free(f) => Some(f.xi.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect();
        v.extend([self.latent.0, self.latent.1]);
        v
    }

    /// Sets what [`Em::params`] returns; `false`, with nothing changed, when an
    /// item's parameters or the latent SD would leave their space.
    pub(super) fn set_params(&mut self, v: &[f64]) -> bool {
        let mut at = 0;
        for s in &self.states {
            if let State::Free(f) = s {
                if !f.valid(&v[at..at + f.dim()]) {
                    return false;
                }
                at += f.dim();
            }
        }
        let (mu, sd) = (v[at], v[at + 1]);
        if !(mu.is_finite() && (LATENT_SD.0..=LATENT_SD.1).contains(&sd)) {
            return false;
        }
        let mut at = 0;
        for i in 0..self.states.len() {
            if let State::Free(f) = &mut self.states[i] {
                let dim = f.dim();
                f.xi.copy_from_slice(&v[at..at + dim]);
                at += dim;
                self.fill_table(i);
            }
        }
        self.latent = (mu, sd);
        self.set_prior();
        true
    }

    fn set_prior(&mut self) {
        let (mu, sd) = self.latent;
        for (w, &t) in self.prior.iter_mut().zip(&self.nodes) {
            let z = (t - mu) / sd;
            *w = (-0.5 * z * z).exp();
        }
        let sum: f64 = self.prior.iter().sum();
        for w in &mut self.prior {
            *w /= sum;
        }
        // The padding stays zero.
    }

    /// Recomputes item i's block of the probability table.
    fn fill_table(&mut self, i: usize) {
        let block = &mut self.table[self.offset[i]..self.offset[i + 1]];
        fill_block(&self.states[i], &self.nodes, block, self.stride);
    }

    /// Persons per block, and the blocks that hold any.
    fn person_blocks(&self) -> (usize, usize) {
        let block = self.data.persons.div_ceil(self.blocks).max(1);
        (
            block,
            self.data.persons.div_ceil(block).clamp(1, self.blocks),
        )
    }

    /// Posterior weights of every person and the expected counts; returns the
    /// marginal log-likelihood.
    pub(super) fn e_step(&mut self) -> f64 {
        let stride = self.stride;
        let table_len = self.table.len();
        let (block, used) = self.person_blocks();
        let e = EBlock {
            row_start: &self.row_start,
            rows: &self.rows,
            table: &self.table,
            prior: &self.prior,
        };
        // Each block of persons into its own partial counts, then the blocks'
        // counts added in block order, a slice of the table at a time.
        let (post, loglik, partial, counts) = (
            &mut self.post,
            &mut self.loglik,
            &mut self.partial,
            &mut self.counts,
        );
        self.pool.install(|| {
            post.par_chunks_mut(block * stride)
                .zip(loglik.par_chunks_mut(block))
                .zip(partial.par_chunks_mut(table_len.max(1)))
                .enumerate()
                .for_each(|(b, ((post, loglik), partial))| {
                    partial.fill(0.0);
                    let first = b * block;
                    kernel::e_block(&e, first..first + loglik.len(), post, loglik, partial);
                });
            let partial = &*partial;
            counts
                .par_chunks_mut(SLICE)
                .enumerate()
                .for_each(|(c, counts)| {
                    counts.fill(0.0);
                    for part in partial.chunks(table_len.max(1)).take(used) {
                        let part = &part[c * SLICE..][..counts.len()];
                        for (c, &x) in counts.iter_mut().zip(part) {
                            *c += x;
                        }
                    }
                });
        });
        self.loglik
            .iter()
            .zip(&self.active)
            .filter(|(_, a)| **a)
            .map(|(l, _)| l)
            .sum()
    }

    /// Updates every free item (and the latent moments); returns the largest change.
    pub(super) fn m_step(&mut self) -> f64 {
        let q_len = self.nodes.len();
        let mut change: f64 = 0.0;
        if self.latent_free.0 || self.latent_free.1 {
            let mut mass = vec![0.0; q_len];
            for (w, _) in self
                .post
                .chunks(self.stride)
                .zip(&self.active)
                .filter(|(_, a)| **a)
            {
                for (m, x) in mass.iter_mut().zip(w) {
                    *m += x;
                }
            }
            let total: f64 = mass.iter().sum();
            let (mu0, sd0) = self.latent;
            let mu = if self.latent_free.0 {
                mass.iter()
                    .zip(&self.nodes)
                    .map(|(m, t)| m * t)
                    .sum::<f64>()
                    / total
            } else {
                mu0
            };
            let sd = if self.latent_free.1 {
                let var = mass
                    .iter()
                    .zip(&self.nodes)
                    .map(|(m, t)| m * (t - mu) * (t - mu))
                    .sum::<f64>()
                    / total;
                var.sqrt().clamp(LATENT_SD.0, LATENT_SD.1)
            } else {
                sd0
            };
            change = change.max((mu - mu0).abs()).max((sd - sd0).abs());
            self.latent = (mu, sd);
            self.set_prior();
        }
        let nodes = &self.nodes;
        let c_prior = self.config.c_prior;
        let counts = &self.counts;
        let offset = &self.offset;
        // Each item's table block, to be filled by its own M-step.
        let mut blocks = Vec::with_capacity(self.states.len());
        let mut rest = &mut self.table[..];
        for i in 0..self.states.len() {
            let (block, tail) = rest.split_at_mut(offset[i + 1] - offset[i]);
            blocks.push(block);
            rest = tail;
        }
        let states = &mut self.states;
        let items = self.pool.install(|| {
            states
                .par_iter_mut()
                .zip(blocks)
                .enumerate()
                .map(|(i, (state, block))| match state {
                    State::Free(free) => {
                        let r = &counts[offset[i]..offset[i + 1]];
                        m_step_item(free, nodes, r, c_prior, block)
                    }
                    _ => 0.0,
                })
                .reduce(|| 0.0, f64::max)
        });
        change.max(items)
    }

    /// The covariance of each free item's ξ (`None` for other items, or when
    /// singular): the inverse of its cross-product information Σ_p s_p s_pᵀ,
    /// s_p = Σ_q w_pq ∂ln P_x(θ_q)/∂ξ over the persons who answered it (plus
    /// the prior's curvature for the 3PL), from the last E-step's posteriors.
    ///
    /// Each item's own block, not the whole matrix over all items: in recovery
    /// runs the blocks cover the truth at close to the nominal rate (93–97% for
    /// 95% intervals), while inverting the whole matrix overstated the GRM's
    /// SEs (100% coverage), at a cost cubic in the number of parameters.
    ///
    /// Summed person by person in the E-step's blocks, added in block order.
    fn covariances(&self) -> Vec<Option<Vec<f64>>> {
        let stride = self.stride;
        let items = self.states.len();
        let (mut at, mut dim, mut info_at) =
            (vec![usize::MAX; items], vec![0; items], vec![0; items]);
        let (mut rows, mut info_len) = (Vec::new(), 0);
        let mut p = [0.0; MAX_CATEGORIES];
        let mut u = [0.0; MAX_CATEGORIES * MAX_DIM];
        for (i, state) in self.states.iter().enumerate() {
            let State::Free(free) = state else { continue };
            let d = free.dim();
            (at[i], dim[i], info_at[i]) = (rows.len() / stride, d, info_len);
            info_len += d * d;
            // Rows (k·dim + j) of ∂ln P_k(θ_q)/∂ξ_j.
            let first = rows.len();
            rows.resize(first + free.cats * d * stride, 0.0);
            for (q, &theta) in self.nodes.iter().enumerate() {
                free.eval(&free.xi, theta, &mut p, Some(&mut u));
                for (kj, &g) in u[..free.cats * d].iter().enumerate() {
                    rows[first + kj * stride + q] = g;
                }
            }
        }
        let zero: Vec<bool> = rows
            .chunks_exact(stride)
            .map(|row| row.iter().all(|&g| g == 0.0))
            .collect();
        let scores = Scores {
            at: &at,
            dim: &dim,
            info_at: &info_at,
            rows: &rows,
            zero: &zero,
        };
        let (block, used) = self.person_blocks();
        let mut partial = vec![0.0; used * info_len];
        if info_len > 0 {
            self.pool.install(|| {
                self.post
                    .par_chunks(block * stride)
                    .zip(partial.par_chunks_mut(info_len))
                    .enumerate()
                    .for_each(|(b, (post, partial))| {
                        let first = b * block;
                        let n = post.len() / stride;
                        kernel::cross_products(&scores, self.data, first..first + n, post, partial);
                    });
            });
        }
        let mut info = vec![0.0; info_len];
        for partial in partial.chunks(info_len.max(1)) {
            for (a, &x) in info.iter_mut().zip(partial) {
                *a += x;
            }
        }
        self.states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let State::Free(free) = state else {
                    return None;
                };
                let d = dim[i];
                let info = &mut info[info_at[i]..][..d * d];
                if let Some((_, _, h)) = free.prior(&free.xi, self.config.c_prior) {
                    info[2 * d + 2] += h;
                }
                Cholesky::new(info, d).map(|c| c.inverse_block(0, d))
            })
            .collect()
    }

    /// Standard errors and the outcome of every item.
    pub(super) fn finish(
        self,
        iterations: usize,
        converged: bool,
        log_likelihood: f64,
    ) -> Calibration {
        let mut parameters = usize::from(self.latent_free.0) + usize::from(self.latent_free.1);
        let mut responses = 0;
        for (state, resp) in self.states.iter().zip(&self.by_item) {
            match state {
                State::Skipped(_) => {}
                State::Fixed(_) => responses += resp.len(),
                State::Free(free) => {
                    responses += resp.len();
                    parameters += free.dim();
                }
            }
        }
        let covariances = self.covariances();
        let items: Vec<Outcome> = self
            .states
            .iter()
            .zip(&self.by_item)
            .zip(covariances)
            .map(|((state, resp), cov)| match state {
                State::Skipped(s) => Outcome::Skipped(*s),
                State::Fixed(_) => Outcome::Fixed {
                    responses: resp.len(),
                },
                State::Free(free) => {
                    let se = match cov {
                        Some(cov) => free.std_errors(&free.xi, &cov),
                        None => StdErrors {
                            a: free.has_slope().then_some(f64::NAN),
                            b: vec![f64::NAN; free.intercepts(&free.xi).len()],
                            c: (free.model == Model::ThreePl).then_some(f64::NAN),
                        },
                    };
                    Outcome::Estimated {
                        model: free.model,
                        item: free.item(&free.xi),
                        se,
                        responses: resp.len(),
                    }
                }
            })
            .collect();
        Calibration {
            items,
            iterations,
            converged,
            log_likelihood,
            parameters,
            persons: self.active.iter().filter(|a| **a).count(),
            responses,
            latent_mean: self.latent.0,
            latent_sd: self.latent.1,
            latent_free: self.latent_free,
        }
    }
}

/// Number of categories an item state occupies in the tables (0 when skipped).
fn cats_of(state: &State) -> usize {
    match state {
        State::Free(f) => f.cats,
        State::Fixed(item) => item.categories(),
        State::Skipped(_) => 0,
    }
}

/// Fills an item's block of P_k(θ_q) (a row of `stride` per category; the
/// padding is left at zero).
fn fill_block(state: &State, nodes: &[f64], block: &mut [f64], stride: usize) {
    match state {
        State::Free(free) => {
            let mut p = [0.0; MAX_CATEGORIES];
            for (q, &theta) in nodes.iter().enumerate() {
                free.eval(&free.xi, theta, &mut p, None);
                for k in 0..free.cats {
                    block[k * stride + q] = p[k];
                }
            }
        }
        State::Fixed(item) => {
            for (q, &theta) in nodes.iter().enumerate() {
                for (k, p) in item.probabilities(theta).into_iter().enumerate() {
                    block[k * stride + q] = p;
                }
            }
        }
        State::Skipped(_) => {}
    }
}

/// The item's state before EM: checks its scores, skips it when its data cannot
/// identify it, and sets starting values.
fn initial_state(i: usize, spec: &ItemSpec, resp: &[(u32, u8)]) -> Result<State, DataError> {
    let top = resp.iter().map(|r| r.1).max();
    match spec {
        ItemSpec::Fixed(item) => {
            if let Some(top) = top.filter(|&t| t > item.max_score()) {
                return Err(DataError::Score {
                    item: i,
                    score: top,
                    max: item.max_score(),
                });
            }
            Ok(State::Fixed(item.clone()))
        }
        ItemSpec::Free { model, categories } => {
            let cats = if model.polytomous() {
                let cats = categories.unwrap_or(usize::from(top.unwrap_or(0)) + 1);
                if !(2..=MAX_CATEGORIES).contains(&cats) {
                    if top.is_none() {
                        return Ok(State::Skipped(Skip::NoResponses));
                    }
                    if cats == 1 {
                        return Ok(State::Skipped(Skip::OneScore(0)));
                    }
                    return Err(DataError::Categories {
                        item: i,
                        categories: cats,
                    });
                }
                cats
            } else {
                2
            };
            let Some(top) = top else {
                return Ok(State::Skipped(Skip::NoResponses));
            };
            if usize::from(top) >= cats {
                return Err(DataError::Score {
                    item: i,
                    score: top,
                    max: (cats - 1) as u8,
                });
            }
            let mut n = [0usize; MAX_CATEGORIES];
            for r in resp {
                n[r.1 as usize] += 1;
            }
            if let Some(k) = (0..cats).find(|&k| n[k] == resp.len()) {
                return Ok(State::Skipped(Skip::OneScore(k as u8)));
            }
            if let Some(k) = (0..cats).find(|&k| n[k] == 0) {
                return Ok(State::Skipped(Skip::EmptyCategory(k as u8)));
            }
            Ok(State::Free(Free {
                model: *model,
                cats,
                xi: start_values(*model, &n[..cats]),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poly::PolyModel;

    #[test]
    fn items_the_data_cannot_identify_are_skipped() {
        let spec = ItemSpec::Free {
            model: Model::TwoPl,
            categories: None,
        };
        assert!(matches!(
            initial_state(0, &spec, &[(0, 1), (1, 1)]).unwrap(),
            State::Skipped(Skip::OneScore(1))
        ));
        assert!(matches!(
            initial_state(0, &spec, &[]).unwrap(),
            State::Skipped(Skip::NoResponses)
        ));
        let grm = ItemSpec::Free {
            model: Model::Poly(PolyModel::Grm),
            categories: Some(4),
        };
        assert!(matches!(
            initial_state(0, &grm, &[(0, 0), (1, 1), (2, 3)]).unwrap(),
            State::Skipped(Skip::EmptyCategory(2))
        ));
        assert_eq!(
            initial_state(3, &spec, &[(0, 2), (1, 0)]).unwrap_err(),
            DataError::Score {
                item: 3,
                score: 2,
                max: 1
            }
        );
    }
}
