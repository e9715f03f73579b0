//! Polytomous and mixed banks against the independent 50-digit reference
//! (`shared/reference/irt_reference.py --json` → `poly_reference.json`), the
//! invariants every estimator must keep, and parameter recovery by simulation.

use lectern_engine::sim::{SimConfig, generate_polytomous_bank, simulate};
use lectern_engine::{
    Cat, Eap, Estimator, Item, ItemBank, ItemParams, Map, MaxInfo, Mle, PolyModel, StopRule, Wle,
};
use proptest::prelude::*;
use serde_json::Value;

const REFERENCE: &str = include_str!("../../shared/reference/poly_reference.json");

fn item_of(v: &Value) -> Item {
    let f = |k: usize| v[k].as_f64().unwrap();
    let list = |k: usize| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    match v[0].as_str().unwrap() {
        "grm" => Item::grm(f(1), list(2)).unwrap(),
        "gpcm" => Item::gpcm(f(1), list(2)).unwrap(),
        "pcm" => Item::pcm(list(2)).unwrap(),
        "4pl" => ItemParams::new(f(1), f(2), f(3), f(4)).unwrap().into(),
        other => panic!("unknown model {other}"),
    }
}

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

fn bank_named(reference: &Value, name: &str) -> (Vec<Item>, ItemBank) {
    let items: Vec<Item> = reference["items"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(item_of)
        .collect();
    (items.clone(), ItemBank::without_concepts(items))
}

#[test]
fn every_estimator_matches_the_reference() {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let (_, bank) = bank_named(&reference, case["bank"].as_str().unwrap());
        let pattern: Vec<u8> = case["pattern"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect();
        let items: Vec<usize> = (0..pattern.len()).collect();
        let estimators: [(&str, &dyn Estimator, f64); 4] = [
            ("eap", &Eap::default(), 1e-6),
            ("map", &Map::default(), 1e-4),
            ("mle", &Mle::new(), 1e-4),
            ("wle", &Wle::new(), 1e-4),
        ];
        for (name, estimator, tolerance) in estimators {
            let got = estimator.estimate(&bank, &items, &pattern);
            let want = &case[name];
            let (theta, se) = (
                want["theta"].as_f64().unwrap(),
                want["se"].as_f64().unwrap(),
            );
            assert!(
                (got.theta - theta).abs() <= tolerance && (got.se - se).abs() <= tolerance,
                "{} {:?} {name}: {got:?}, reference θ = {theta}, se = {se}",
                case["bank"],
                pattern
            );
        }
    }
}

#[test]
fn probabilities_and_information_match_the_reference() {
    let reference = reference();
    let curves = reference["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 45);
    for curve in curves {
        let (items, bank) = bank_named(&reference, curve["bank"].as_str().unwrap());
        let i = curve["item"].as_u64().unwrap() as usize;
        let theta = curve["theta"].as_f64().unwrap();
        let want: Vec<f64> = curve["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got = items[i].probabilities(theta);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-14 * w.max(1e-3), "{curve}: {got:?}");
        }
        let info = curve["info"].as_f64().unwrap();
        assert!(
            (bank.information(i, theta) - info).abs() <= 1e-13 * info.max(1e-3),
            "{curve}"
        );
        assert!((items[i].information(theta) - info).abs() <= 1e-13 * info.max(1e-3));
    }
}

/// A GRM, GPCM or PCM item, or a 2PL item: the models whose likelihood rises
/// with every response (a 3PL/4PL likelihood need not).
fn arb_item() -> impl Strategy<Value = Item> {
    (
        0.3f64..2.5,
        proptest::collection::vec(-2.5f64..2.5, 1..6),
        0..4u8,
    )
        .prop_map(|(a, mut b, model)| match model {
            0 => {
                b.sort_by(f64::total_cmp);
                b.dedup_by(|x, y| (*x - *y).abs() < 1e-3);
                Item::grm(a, b).unwrap()
            }
            1 => Item::gpcm(a, b).unwrap(),
            2 => Item::pcm(b).unwrap(),
            _ => ItemParams::new(a, b[0], 0.0, 1.0).unwrap().into(),
        })
}

fn arb_test() -> impl Strategy<Value = (Vec<Item>, Vec<u8>)> {
    proptest::collection::vec(
        arb_item().prop_flat_map(|item| {
            let top = item.max_score();
            (Just(item), 0..=top)
        }),
        1..12,
    )
    .prop_map(|rows| rows.into_iter().unzip())
}

fn estimators() -> [(&'static str, Box<dyn Estimator>); 4] {
    [
        ("eap", Box::new(Eap::default())),
        ("map", Box::new(Map::default())),
        ("mle", Box::new(Mle::new())),
        ("wle", Box::new(Wle::new())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn estimates_are_finite_for_every_pattern((items, scores) in arb_test(), extreme in 0..3u8) {
        let bank = ItemBank::without_concepts(items);
        let scores: Vec<u8> = match extreme {
            0 => vec![0; scores.len()],
            1 => (0..scores.len()).map(|i| bank.max_score(i)).collect(),
            _ => scores,
        };
        let all: Vec<usize> = (0..scores.len()).collect();
        for (name, e) in estimators() {
            let r = e.estimate(&bank, &all, &scores);
            prop_assert!(r.theta.is_finite() && (-6.0..=6.0).contains(&r.theta), "{name} {r:?}");
            prop_assert!(r.se.is_finite() && r.se > 0.0, "{name} {r:?}");
        }
    }

    #[test]
    fn a_higher_response_never_lowers_theta((items, scores) in arb_test(), pick in any::<prop::sample::Index>()) {
        let bank = ItemBank::without_concepts(items);
        let all: Vec<usize> = (0..scores.len()).collect();
        let raisable: Vec<usize> = all.iter().copied().filter(|&i| scores[i] < bank.max_score(i)).collect();
        prop_assume!(!raisable.is_empty());
        let i = raisable[pick.index(raisable.len())];
        let mut higher = scores.clone();
        higher[i] += 1;
        for (name, e) in estimators() {
            let (before, after) = (e.estimate(&bank, &all, &scores), e.estimate(&bank, &all, &higher));
            prop_assert!(after.theta >= before.theta - 1e-7, "{name}: {before:?} → {after:?}");
        }
    }

    #[test]
    fn pcm_estimates_depend_on_the_summed_score_only(
        steps in proptest::collection::vec(proptest::collection::vec(-2.5f64..2.5, 1..5), 2..10),
        seed in any::<u64>(),
    ) {
        let items: Vec<Item> = steps.into_iter().map(|b| Item::pcm(b).unwrap()).collect();
        let bank = ItemBank::without_concepts(items);
        let all: Vec<usize> = (0..bank.len()).collect();
        // Two different patterns with the same sum: move one point from one item to another.
        let mut x: Vec<u8> = (0..bank.len()).map(|i| ((seed >> (i % 60)) as u8) % (bank.max_score(i) + 1)).collect();
        let from = (0..bank.len()).find(|&i| x[i] > 0);
        let to = (0..bank.len()).find(|&i| Some(i) != from && x[i] < bank.max_score(i));
        prop_assume!(from.is_some() && to.is_some());
        let mut y = x.clone();
        y[from.unwrap()] -= 1;
        y[to.unwrap()] += 1;
        if x == y { x.swap(0, 1); }
        for (name, e) in estimators() {
            let (a, b) = (e.estimate(&bank, &all, &x), e.estimate(&bank, &all, &y));
            prop_assert!((a.theta - b.theta).abs() < 1e-8 && (a.se - b.se).abs() < 1e-8, "{name}: {a:?} vs {b:?}");
        }
    }
}

/// The recovery goal: 2,000 simulated examinees, 30-item adaptive tests
/// (maximum information, EAP) on a 300-item GRM bank of 5 categories.
#[test]
fn grm_parameter_recovery() {
    let bank = generate_polytomous_bank(PolyModel::Grm, 300, 5, 20);
    let cat = Cat::new(
        Box::new(Eap::default()),
        Box::new(MaxInfo),
        StopRule {
            max_items: 30,
            ..StopRule::default()
        },
    );
    let cfg = SimConfig {
        examinees: 2000,
        seed: 11,
        ..SimConfig::default()
    };
    let summary = simulate(&cat, &bank, &cfg, &|_| {}).summary();
    assert!(summary.bias.abs() < 0.05, "{summary:?}");
    assert!(summary.rmse < 0.30, "{summary:?}");
    assert!(summary.correlation > 0.95, "{summary:?}");
    // Every response came from the model's categories, and each category occurs.
    assert_eq!(summary.mean_length, 30.0);
}

/// Mixed banks: half 3PL, half GPCM; every selector sees both, and recovery holds.
#[test]
fn mixed_bank_recovery() {
    let poly = generate_polytomous_bank(PolyModel::Gpcm, 150, 4, 3);
    let dich = lectern_engine::sim::generate_bank(150, 4);
    let items: Vec<Item> = (0..150)
        .flat_map(|i| [poly.item(i), dich.item(i)])
        .collect();
    let bank = ItemBank::without_concepts(items);
    let cat = Cat::new(
        Box::new(Map::default()),
        Box::new(lectern_engine::Randomesque { k: 3 }),
        StopRule {
            max_items: 30,
            ..StopRule::default()
        },
    );
    let cfg = SimConfig {
        examinees: 1000,
        seed: 2,
        ..SimConfig::default()
    };
    let sim = simulate(&cat, &bank, &cfg, &|_| {});
    let summary = sim.summary();
    assert!(
        summary.bias.abs() < 0.08 && summary.rmse < 0.35,
        "{summary:?}"
    );
    let given: Vec<usize> = sim.exposure_counts();
    let (poly_given, dich_given): (usize, usize) = (
        (0..300).step_by(2).map(|i| given[i]).sum(),
        (1..300).step_by(2).map(|i| given[i]).sum(),
    );
    assert!(
        poly_given > 0 && dich_given > 0,
        "{poly_given} {dich_given}"
    );
    // Scores above 1 occur, and only on polytomous items.
    let mut high = 0;
    for e in &sim.examinees {
        for (&i, &u) in e.items.iter().zip(&e.answers) {
            assert!(u <= bank.max_score(i));
            high += usize::from(u > 1);
        }
    }
    assert!(high > 0);
}

/// Any item, 3PL/4PL included: what selectors face in a mixed bank.
fn arb_any_item() -> impl Strategy<Value = Item> {
    (arb_item(), 0.0f64..0.3, 0.7f64..1.0, any::<bool>()).prop_map(
        |(item, c, d, four)| match item {
            Item::Dichotomous(p) if four => ItemParams::new(p.a, p.b, c, d).unwrap().into(),
            other => other,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The scan's bounds (maximum information, distance from the thresholds)
    /// never skip the most informative item of a mixed bank, nor one of the
    /// top k.
    #[test]
    fn selection_finds_the_most_informative_item(
        items in proptest::collection::vec(arb_any_item(), 1..120),
        theta in -5.0f64..5.0,
        given in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        use lectern_engine::Selector;
        let bank = ItemBank::without_concepts(items);
        let given: Vec<usize> = given.iter().map(|g| g.index(bank.len())).collect();
        let mut open: Vec<(f64, usize)> = (0..bank.len())
            .filter(|i| !given.contains(i))
            .map(|i| (bank.information(i, theta), i))
            .collect();
        open.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let got = MaxInfo.select(&bank, theta, &given, &mut rng);
        prop_assert_eq!(got, open.first().map(|x| x.1));
        // Randomesque draws among exactly the top 3.
        let top: Vec<usize> = open.iter().take(3).map(|x| x.1).collect();
        for seed in 0..8 {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let pick = lectern_engine::Randomesque { k: 3 }.select(&bank, theta, &given, &mut rng);
            prop_assert!(pick.is_some_and(|i| top.contains(&i)) || top.is_empty());
        }
    }
}
