//! Item calibration (`lectern_engine::calibrate`) by parameter recovery: data
//! simulated from known items — full designs and a realistic adaptive one
//! (random routing items, then items chosen at the running estimate) — must
//! give back those items within stated RMSE bounds, with standard errors that
//! cover the truth at about their nominal rate, the same for any thread count.

use lectern_engine::calibrate::{
    self, Calibration, Config, ItemSpec, Model, Outcome, Responses, Skip,
};
use lectern_engine::sim::{SimConfig, simulate};
use lectern_engine::{
    Candidates, Cat, Eap, Item, ItemBank, ItemParams, NormalPrior, PolyModel, Randomesque,
    Selector, StopRule,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn two_pl_items(n: usize, rng: &mut impl Rng) -> Vec<Item> {
    (0..n)
        .map(|_| {
            let a = 0.7 + 1.3 * rng.random::<f64>();
            let b = normal(rng).clamp(-2.5, 2.5);
            ItemParams::new(a, b, 0.0, 1.0).unwrap().into()
        })
        .collect()
}

/// Every person answers every item.
fn full_design(items: &[Item], thetas: &[f64], rng: &mut impl Rng) -> Responses {
    let bank = ItemBank::without_concepts(items.to_vec());
    let mut triples = Vec::new();
    for (p, &theta) in thetas.iter().enumerate() {
        for i in 0..items.len() {
            triples.push((p as u32, i as u32, bank.draw(i, theta, rng.random())));
        }
    }
    Responses::new(thetas.len(), items.len(), triples).unwrap()
}

/// Routing: the first `routing` items at random, then the inner selector at
/// the running estimate.
struct Routing {
    routing: usize,
    inner: Randomesque,
}

impl Selector for Routing {
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        if candidates.administered().len() < self.routing {
            loop {
                let i = (rng.next_u64() % bank.len() as u64) as usize;
                if !candidates.administered().contains(&i) {
                    return Some(i);
                }
            }
        }
        self.inner.choose(bank, theta, candidates, rng)
    }
}

/// An adaptive design: 3 random routing items, then randomesque (5) at the
/// running EAP estimate, `length` items in all; θ ~ N(0, 1).
fn adaptive_design(items: &[Item], persons: usize, length: usize, seed: u64) -> Responses {
    let bank = ItemBank::without_concepts(items.to_vec());
    let cat = Cat::new(
        Box::new(Eap::new(NormalPrior::new(0.0, 1.0))),
        Box::new(Routing {
            routing: 3,
            inner: Randomesque { k: 5 },
        }),
        StopRule {
            max_items: length,
            ..StopRule::default()
        },
    );
    let cfg = SimConfig {
        examinees: persons,
        seed,
        theta_mean: 0.0,
        theta_sd: 1.0,
        threads: 0,
    };
    let sim = simulate(&cat, &bank, &cfg, &|_| {});
    let mut triples = Vec::new();
    for (p, e) in sim.examinees.iter().enumerate() {
        for (&i, &s) in e.items.iter().zip(&e.answers) {
            triples.push((p as u32, i as u32, s));
        }
    }
    Responses::new(persons, items.len(), triples).unwrap()
}

fn run(data: &Responses, specs: &[ItemSpec], threads: usize) -> Calibration {
    let config = Config {
        threads,
        ..Config::default()
    };
    calibrate::calibrate(data, specs, &config, &mut |_, _| {}).unwrap()
}

fn free(model: Model, n: usize) -> Vec<ItemSpec> {
    vec![
        ItemSpec::Free {
            model,
            categories: None
        };
        n
    ]
}

/// (a, thresholds) of an item.
fn params(item: &Item) -> (f64, Vec<f64>) {
    match item {
        Item::Dichotomous(p) => (p.a, vec![p.b]),
        Item::Polytomous(p) => (p.a(), p.thresholds().to_vec()),
    }
}

/// RMSE of a and of every b against the truth over the estimated items, and the
/// share of 95% intervals (estimate ± 1.96 SE) that hold the true value.
struct Recovery {
    rmse_a: f64,
    rmse_b: f64,
    coverage: f64,
    /// Root mean squared SE over RMSE, all parameters: near 1 when the SEs are right.
    se_ratio: f64,
}

fn recovery(truth: &[Item], fit: &Calibration) -> Recovery {
    recovery_of(truth, fit, 0)
}

/// [`recovery`] over the items with at least `min_responses` responses.
fn recovery_of(truth: &[Item], fit: &Calibration, min_responses: usize) -> Recovery {
    let (mut sa, mut na, mut sb, mut nb, mut hit, mut n) = (0.0, 0, 0.0, 0, 0, 0);
    let mut se2 = 0.0;
    for (t, o) in truth.iter().zip(&fit.items) {
        let Outcome::Estimated {
            item,
            se,
            responses,
            ..
        } = o
        else {
            continue;
        };
        if *responses < min_responses {
            continue;
        }
        let (ta, tb) = params(t);
        let (ea, eb) = params(item);
        if let Some(sea) = se.a {
            sa += (ea - ta).powi(2);
            na += 1;
            hit += usize::from((ea - ta).abs() <= 1.96 * sea);
            se2 += sea * sea;
            n += 1;
        }
        for ((t, e), s) in tb.iter().zip(&eb).zip(&se.b) {
            sb += (e - t).powi(2);
            nb += 1;
            hit += usize::from((e - t).abs() <= 1.96 * s);
            se2 += s * s;
            n += 1;
        }
    }
    Recovery {
        rmse_a: if na == 0 {
            0.0
        } else {
            (sa / na as f64).sqrt()
        },
        rmse_b: (sb / nb as f64).sqrt(),
        coverage: hit as f64 / n as f64,
        se_ratio: (se2 / (sa + sb)).sqrt(),
    }
}

#[test]
fn two_pl_full_design_recovers_items_and_covers_them() {
    // Three samples of 2,000 persons × 50 items: RMSE per sample, coverage pooled
    // over the 300 parameters.
    let (mut hits, mut total) = (0.0, 0.0);
    for seed in [11, 21, 31] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let items = two_pl_items(50, &mut rng);
        let thetas: Vec<f64> = (0..2000).map(|_| normal(&mut rng)).collect();
        let data = full_design(&items, &thetas, &mut rng);
        let fit = run(&data, &free(Model::TwoPl, 50), 0);
        let r = recovery(&items, &fit);
        println!(
            "2PL full 2000×50 (seed {seed}): {} iterations, RMSE a {:.4} b {:.4}, coverage {:.3}",
            fit.iterations, r.rmse_a, r.rmse_b, r.coverage
        );
        assert!(fit.converged);
        assert_eq!(fit.parameters, 100);
        assert_eq!(fit.persons, 2000);
        assert_eq!(fit.responses, 100_000);
        assert!(r.rmse_a < 0.12, "RMSE a {}", r.rmse_a);
        assert!(r.rmse_b < 0.12, "RMSE b {}", r.rmse_b);
        assert_eq!((fit.latent_mean, fit.latent_sd), (0.0, 1.0));
        assert!(fit.aic() > -2.0 * fit.log_likelihood && fit.bic() > fit.aic());
        hits += r.coverage * 100.0;
        total += 100.0;
    }
    let coverage = hits / total;
    println!("pooled coverage of the 95% intervals: {coverage:.3}");
    assert!((0.9..=0.985).contains(&coverage), "coverage {coverage}");
}

#[test]
fn two_pl_adaptive_design_recovers_items() {
    // 5,000 adaptive tests of 20 items from a 100-item bank: about 1,000
    // responses per item, each from examinees near its difficulty.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let items = two_pl_items(100, &mut rng);
    let data = adaptive_design(&items, 5000, 20, 12);
    let fit = run(&data, &free(Model::TwoPl, 100), 0);
    let r = recovery(&items, &fit);
    println!(
        "2PL adaptive 5000×20 of 100: {} iterations, RMSE a {:.4} b {:.4}, coverage {:.3}",
        fit.iterations, r.rmse_a, r.rmse_b, r.coverage
    );
    assert!(fit.converged);
    assert_eq!(fit.responses, 100_000);
    // Selection at the estimate leaves the weakest items with few responses, and
    // their errors are large (as their SEs say); items given 300 times or more
    // are recovered as well as from a full design.
    assert!(r.rmse_a < 0.25, "RMSE a {}", r.rmse_a);
    assert!(r.rmse_b < 0.3, "RMSE b {}", r.rmse_b);
    assert!(
        (0.9..=0.99).contains(&r.coverage),
        "coverage {}",
        r.coverage
    );
    assert!(
        (0.8..=1.25).contains(&r.se_ratio),
        "SE / RMSE {}",
        r.se_ratio
    );
    let used = recovery_of(&items, &fit, 300);
    println!(
        "  items with ≥ 300 responses: RMSE a {:.4} b {:.4}",
        used.rmse_a, used.rmse_b
    );
    assert!(
        used.rmse_a < 0.15 && used.rmse_b < 0.15,
        "{} {}",
        used.rmse_a,
        used.rmse_b
    );
}

#[test]
fn grm_five_categories_recovers_items() {
    // Errors within one sample share its latent scale, so the SEs are judged
    // over three samples: coverage pooled, and RMS SE against RMSE.
    let (mut hits, mut ratio) = (0.0, 0.0);
    for seed in [13, 23, 33] {
        let bank = lectern_engine::sim::generate_polytomous_bank(PolyModel::Grm, 20, 5, seed);
        let items: Vec<Item> = (0..bank.len()).map(|i| bank.item(i)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let thetas: Vec<f64> = (0..1500).map(|_| normal(&mut rng)).collect();
        let data = full_design(&items, &thetas, &mut rng);
        let fit = run(&data, &free(Model::Poly(PolyModel::Grm), 20), 0);
        let r = recovery(&items, &fit);
        println!(
            "GRM 1500×20 (seed {seed}): {} iterations, RMSE a {:.4} b {:.4}, coverage {:.3}, SE/RMSE {:.3}",
            fit.iterations, r.rmse_a, r.rmse_b, r.coverage, r.se_ratio
        );
        assert!(fit.converged);
        assert_eq!(fit.parameters, 100);
        assert!(r.rmse_a < 0.10, "RMSE a {}", r.rmse_a);
        assert!(r.rmse_b < 0.12, "RMSE b {}", r.rmse_b);
        hits += r.coverage / 3.0;
        ratio += r.se_ratio / 3.0;
    }
    assert!((0.9..=0.995).contains(&hits), "pooled coverage {hits}");
    assert!((0.8..=1.25).contains(&ratio), "SE / RMSE {ratio}");
}

#[test]
fn gpcm_and_pcm_recover_items() {
    for (model, seed) in [(PolyModel::Gpcm, 14), (PolyModel::Pcm, 15)] {
        let bank = lectern_engine::sim::generate_polytomous_bank(model, 15, 4, seed);
        let items: Vec<Item> = (0..bank.len()).map(|i| bank.item(i)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let thetas: Vec<f64> = (0..3000).map(|_| normal(&mut rng)).collect();
        let data = full_design(&items, &thetas, &mut rng);
        let fit = run(&data, &free(Model::Poly(model), 15), 0);
        let r = recovery(&items, &fit);
        println!(
            "{model} 3000×15: {} iterations, RMSE a {:.4} b {:.4}, coverage {:.3}, latent SD {:.3}",
            fit.iterations, r.rmse_a, r.rmse_b, r.coverage, fit.latent_sd
        );
        assert!(fit.converged);
        assert!(r.rmse_a < 0.12, "{model} RMSE a {}", r.rmse_a);
        assert!(r.rmse_b < 0.15, "{model} RMSE b {}", r.rmse_b);
        assert!(
            (0.85..=0.99).contains(&r.coverage),
            "{model} coverage {}",
            r.coverage
        );
        // The PCM fixes every slope, so the latent SD is estimated instead.
        assert_eq!(fit.latent_free, (false, model == PolyModel::Pcm));
        if model == PolyModel::Pcm {
            assert!((fit.latent_sd - 1.0).abs() < 0.1, "SD {}", fit.latent_sd);
        }
    }
}

#[test]
fn one_pl_estimates_the_latent_sd_and_three_pl_uses_its_prior() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let rasch: Vec<Item> = (0..20)
        .map(|_| {
            ItemParams::new(1.0, normal(&mut rng), 0.0, 1.0)
                .unwrap()
                .into()
        })
        .collect();
    let thetas: Vec<f64> = (0..2000).map(|_| 1.5 * normal(&mut rng)).collect();
    let data = full_design(&rasch, &thetas, &mut rng);
    let fit = run(&data, &free(Model::OnePl, 20), 0);
    let r = recovery(&rasch, &fit);
    println!("1PL: SD {:.3}, RMSE b {:.4}", fit.latent_sd, r.rmse_b);
    assert!((fit.latent_sd - 1.5).abs() < 0.1, "SD {}", fit.latent_sd);
    assert!(r.rmse_b < 0.1, "RMSE b {}", r.rmse_b);

    let three: Vec<Item> = (0..30)
        .map(|_| {
            let a = 1.0 + rng.random::<f64>();
            let b = normal(&mut rng).clamp(-2.0, 2.0);
            let c = 0.1 + 0.15 * rng.random::<f64>();
            ItemParams::new(a, b, c, 1.0).unwrap().into()
        })
        .collect();
    let thetas: Vec<f64> = (0..3000).map(|_| normal(&mut rng)).collect();
    let data = full_design(&three, &thetas, &mut rng);
    let fit = run(&data, &free(Model::ThreePl, 30), 0);
    let r = recovery(&three, &fit);
    let rmse_c = (three
        .iter()
        .zip(&fit.items)
        .map(|(t, o)| match (t, o) {
            (
                Item::Dichotomous(t),
                Outcome::Estimated {
                    item: Item::Dichotomous(e),
                    ..
                },
            ) => (t.c - e.c).powi(2),
            _ => panic!("not estimated"),
        })
        .sum::<f64>()
        / 30.0)
        .sqrt();
    println!(
        "3PL: {} iterations, RMSE a {:.4} b {:.4} c {:.4}",
        fit.iterations, r.rmse_a, r.rmse_b, rmse_c
    );
    assert!(r.rmse_a < 0.25 && r.rmse_b < 0.2 && rmse_c < 0.06);
}

#[test]
fn fixed_items_anchor_the_scale() {
    // Examinees on the bank's scale at N(0.5, 1.3²): 30 operational items fixed
    // at their true values, 10 new ones estimated onto that scale.
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let items = two_pl_items(40, &mut rng);
    let thetas: Vec<f64> = (0..3000).map(|_| 0.5 + 1.3 * normal(&mut rng)).collect();
    let data = full_design(&items, &thetas, &mut rng);
    let mut specs: Vec<ItemSpec> = items[..30].iter().cloned().map(ItemSpec::Fixed).collect();
    specs.extend(free(Model::TwoPl, 10));
    let fit = run(&data, &specs, 0);
    let r = recovery(&items, &fit);
    println!(
        "fixed-item: latent N({:.3}, {:.3}²), RMSE a {:.4} b {:.4}",
        fit.latent_mean, fit.latent_sd, r.rmse_a, r.rmse_b
    );
    assert_eq!(fit.latent_free, (true, true));
    assert!(
        (fit.latent_mean - 0.5).abs() < 0.08,
        "mean {}",
        fit.latent_mean
    );
    assert!((fit.latent_sd - 1.3).abs() < 0.08, "SD {}", fit.latent_sd);
    assert!(
        r.rmse_a < 0.12 && r.rmse_b < 0.12,
        "{} {}",
        r.rmse_a,
        r.rmse_b
    );
    assert!(matches!(fit.items[0], Outcome::Fixed { responses: 3000 }));
    assert_eq!(fit.parameters, 20 + 2);
}

#[test]
fn results_do_not_depend_on_threads_and_unusable_items_are_skipped() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let mut items = two_pl_items(40, &mut rng);
    items.extend(
        (0..5).map(|_| Item::grm(1.2, vec![-1.0 + normal(&mut rng) * 0.2, 0.0, 1.0]).unwrap()),
    );
    let mut data_triples = Vec::new();
    let thetas: Vec<f64> = (0..600).map(|_| normal(&mut rng)).collect();
    let bank = ItemBank::without_concepts(items.clone());
    for (p, &theta) in thetas.iter().enumerate() {
        for i in 0..items.len() {
            if rng.random::<f64>() < 0.5 {
                data_triples.push((p as u32, i as u32, bank.draw(i, theta, rng.random())));
            }
        }
        // Item 45: everyone who answers it is right; item 46 never answered.
        if p % 3 == 0 {
            data_triples.push((p as u32, 45, 1));
        }
    }
    let data = Responses::new(600, 47, data_triples).unwrap();
    let mut specs = free(Model::TwoPl, 40);
    specs.extend(free(Model::Poly(PolyModel::Grm), 5));
    specs.extend(free(Model::TwoPl, 2));
    let one = run(&data, &specs, 1);
    assert_eq!(one, run(&data, &specs, 2));
    assert_eq!(one, run(&data, &specs, 3));
    assert_eq!(one, run(&data, &specs, 7));
    assert_eq!(one.items[45], Outcome::Skipped(Skip::OneScore(1)));
    assert_eq!(one.items[46], Outcome::Skipped(Skip::NoResponses));
    assert!(matches!(
        &one.items[44],
        Outcome::Estimated { model: Model::Poly(PolyModel::Grm), item, .. } if item.categories() == 4
    ));
    // The skipped item's responses are not part of the likelihood.
    assert_eq!(one.responses, data.len() - 200);
}
