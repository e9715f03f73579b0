//! The engine's speed goals (issue 3), on the 2-core CI machine:
//! one EAP update with 30 answers ≤ 5 µs; one selection from 5,000 items ≤ 20 µs;
//! a 1,000-examinee × 20-item simulation on a 500-item 3PL bank ≤ 0.2 s.
//! Polytomous (issue 20), on banks of 5-category GRM items: one EAP update with
//! 30 answers ≤ 10 µs; one selection from 5,000 items ≤ 50 µs; a 1,000 × 20
//! simulation on 500 items ≤ 0.5 s (`-- grm` runs just these).
//!
//! Pretest items: a test's pretest plan is recomputed on every submit and
//! next of a test that has some, so it must cost far less than a step.
//!
//! `cargo bench -p lectern-engine --bench engine` (add `-- <filter>` for one group,
//! e.g. `-- step` for a whole step, plain and with content constraints).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lectern_engine::sim::{SimConfig, generate_bank, generate_polytomous_bank, simulate};
use lectern_engine::{
    Cat, Constraints, ContentBalanced, Eap, Estimator, ItemBank, Map, MaxInfo, Mle, PolyModel,
    PretestPlan, Randomesque, Selector, StopRule, SympsonHetter, Wle,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A 30-answer response pattern on the first 30 items of `bank`, answered as an
/// examinee at θ = 0.4 would most likely answer.
fn pattern(bank: &ItemBank, n: usize) -> (Vec<usize>, Vec<u8>) {
    let items: Vec<usize> = (0..n).collect();
    let answers = items
        .iter()
        .enumerate()
        .map(|(k, &i)| u8::from(bank.probability(i, 0.4) > 0.35 + 0.3 * ((k % 3) as f64 / 2.0)))
        .collect();
    (items, answers)
}

fn estimators(c: &mut Criterion) {
    let bank = generate_bank(500, 1);
    let (items, answers) = pattern(&bank, 30);
    let mut group = c.benchmark_group("estimate_30_answers");
    let all: [(&str, &dyn Estimator); 4] = [
        ("eap", &Eap::default()),
        ("map", &Map::default()),
        ("mle", &Mle::new()),
        ("wle", &Wle::new()),
    ];
    for (name, est) in all {
        group.bench_function(name, |b| {
            b.iter(|| est.estimate(black_box(&bank), black_box(&items), black_box(&answers)))
        });
    }
    // 30 five-category GRM answers, scores spread over the categories.
    let grm = generate_polytomous_bank(PolyModel::Grm, 500, 5, 1);
    let items: Vec<usize> = (0..30).collect();
    let scores: Vec<u8> = (0..30).map(|k| (k * 7 % 5) as u8).collect();
    for (name, est) in all {
        group.bench_function(format!("grm5_{name}"), |b| {
            b.iter(|| est.estimate(black_box(&grm), black_box(&items), black_box(&scores)))
        });
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for n in [500usize, 5_000, 50_000] {
        let bank = generate_bank(n, 2);
        // Mid-test: 20 items given, θ between the bank's difficulties.
        let given: Vec<usize> = (0..20).map(|k| k * (n / 20)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        group.bench_with_input(BenchmarkId::new("max_info", n), &n, |b, _| {
            b.iter(|| MaxInfo.select(black_box(&bank), black_box(0.37), &given, &mut rng))
        });
        // Far in the tail, where few items are informative and the scan runs longest.
        group.bench_with_input(BenchmarkId::new("max_info_at_2.8", n), &n, |b, _| {
            b.iter(|| MaxInfo.select(black_box(&bank), black_box(2.8), &given, &mut rng))
        });
        group.bench_with_input(BenchmarkId::new("randomesque_5", n), &n, |b, _| {
            b.iter(|| {
                Randomesque { k: 5 }.select(black_box(&bank), black_box(0.37), &given, &mut rng)
            })
        });
        let grm = generate_polytomous_bank(PolyModel::Grm, n, 5, 2);
        group.bench_with_input(BenchmarkId::new("grm5_max_info", n), &n, |b, _| {
            b.iter(|| MaxInfo.select(black_box(&grm), black_box(0.37), &given, &mut rng))
        });
        group.bench_with_input(BenchmarkId::new("grm5_max_info_at_2.8", n), &n, |b, _| {
            b.iter(|| MaxInfo.select(black_box(&grm), black_box(2.8), &given, &mut rng))
        });
        if n == 5_000 {
            let concepts = (0..n).map(|i| vec![(i % 5) as u16]).collect();
            let params = (0..n).map(|i| bank.item(i)).collect();
            let tagged = ItemBank::new(params, concepts)
                .with_exposure((0..n).map(|i| if i % 4 == 0 { 0.3 } else { 1.0 }).collect());
            let balanced = SympsonHetter::new(Box::new(
                ContentBalanced::new(
                    vec![(0, 0.3), (1, 0.2), (2, 0.2), (3, 0.2), (4, 0.1)],
                    Box::new(MaxInfo),
                )
                .expect("valid targets"),
            ));
            group.bench_with_input(
                BenchmarkId::new("balanced_sympson_hetter", n),
                &n,
                |b, _| {
                    b.iter(|| {
                        balanced.select(black_box(&tagged), black_box(0.37), &given, &mut rng)
                    })
                },
            );
        }
    }
    group.finish();
}

/// One whole step (EAP update + selection) mid-test, on a 5,000-item bank tagged
/// with 5 concepts: plain, and with a blueprint and 1,250 enemy groups of 4.
fn step(c: &mut Criterion) {
    let n = 5_000;
    let raw = generate_bank(n, 2);
    let bank = ItemBank::new(
        (0..n).map(|i| raw.item(i)).collect(),
        (0..n).map(|i| vec![(i % 5) as u16]).collect(),
    );
    let stop = StopRule {
        max_items: 40,
        ..StopRule::default()
    };
    let plain = Cat::new(Box::new(Eap::default()), Box::new(MaxInfo), stop);
    let blueprint = [(0, 6, 10), (1, 6, 10), (2, 6, 10), (3, 4, 8), (4, 4, 8)];
    let enemies: Vec<Vec<usize>> = (0..n / 4).map(|g| (4 * g..4 * g + 4).collect()).collect();
    let constraints = Constraints::new(&blueprint, &enemies);
    constraints.check(&bank, 0, 40).expect("feasible");
    let constrained =
        Cat::new(Box::new(Eap::default()), Box::new(MaxInfo), stop).with_constraints(constraints);
    // 20 items given (the plain test's own), so both steps start from the same answers.
    let (mut items, mut answers) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let next = plain
            .step(&bank, &items, &answers, 9)
            .next
            .expect("items left");
        answers.push(u8::from(bank.probability(next, 0.4) > 0.5));
        items.push(next);
    }
    let mut group = c.benchmark_group("step");
    for (name, cat) in [
        ("plain_20_given", &plain),
        ("blueprint_enemies_20_given", &constrained),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| cat.step(black_box(&bank), black_box(&items), black_box(&answers), 9))
        });
    }
    group.finish();
}

fn pretest(c: &mut Criterion) {
    let mut group = c.benchmark_group("pretest_plan");
    // 3 of 40 and 10 of 5,000 pretest items, in a 20-item test.
    for (k, available) in [(3, 40), (10, 5_000)] {
        group.bench_function(format!("{k}_of_{available}"), |b| {
            b.iter(|| PretestPlan::new(black_box(0x5eed), k, 20, black_box(available)))
        });
    }
    group.finish();
}

fn simulation(c: &mut Criterion) {
    let bank = generate_bank(500, 4);
    let cat = Cat::new(
        Box::new(Eap::default()),
        Box::new(MaxInfo),
        StopRule {
            max_items: 20,
            ..StopRule::default()
        },
    );
    let cfg = SimConfig {
        examinees: 1000,
        seed: 5,
        ..SimConfig::default()
    };
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.bench_function("1000x20_eap_500_3pl", |b| {
        b.iter(|| simulate(&cat, &bank, black_box(&cfg), &|_| {}))
    });
    let grm = generate_polytomous_bank(PolyModel::Grm, 500, 5, 4);
    let one_thread = SimConfig {
        threads: 1,
        ..cfg.clone()
    };
    group.bench_function("1000x20_eap_500_grm5", |b| {
        b.iter(|| simulate(&cat, &grm, black_box(&cfg), &|_| {}))
    });
    group.bench_function("1000x20_eap_500_grm5_one_thread", |b| {
        b.iter(|| simulate(&cat, &grm, black_box(&one_thread), &|_| {}))
    });
    group.finish();
}

criterion_group!(benches, estimators, selection, step, pretest, simulation);
criterion_main!(benches);
