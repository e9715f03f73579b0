//! What the tutor's decision costs in CPU: classifying an input, one decision
//! (context, input) → (context, action), and the JSON the context travels as
//! in Redis and PostgreSQL.
//!
//! Run: `cargo bench -p lectern-orchestrator --bench orchestrator`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lectern_orchestrator::{self as orchestrator, Input, Lesson, TeachingContext, classify};
use uuid::Uuid;

const INPUTS: [&str; 6] = [
    "next",
    "Can you repeat that, please?",
    "I don't understand why the denominator stays the same",
    "What is the difference between a ratio and a fraction?",
    "hold on",
    "my cat likes this example a lot",
];

/// A session some way in: five recent questions, some confusion.
fn context() -> TeachingContext {
    let lesson = Lesson {
        course_id: "algebra-1".into(),
        module_index: 2,
        sub_topic_index: 1,
        total_segments: 12,
        segment_index: 0,
        course_version: None,
    };
    let mut ctx = orchestrator::start(Uuid::new_v4(), Uuid::new_v4(), lesson, 0).context;
    for (i, text) in [
        "next",
        "why?",
        "what is x?",
        "huh",
        "ok",
        "how so?",
        "and y?",
    ]
    .iter()
    .enumerate()
    {
        ctx = orchestrator::decide(&ctx, &Input::new(text), i as i64)
            .unwrap()
            .context;
    }
    ctx
}

fn orchestrator_benches(c: &mut Criterion) {
    c.bench_function("classify/6 inputs", |b| {
        b.iter(|| {
            for text in INPUTS {
                black_box(classify(black_box(text)));
            }
        })
    });
    let ctx = context();
    let input = Input::new(INPUTS[3]);
    c.bench_function("decide/question", |b| {
        b.iter(|| orchestrator::decide(black_box(&ctx), black_box(&input), 1).unwrap())
    });
    c.bench_function("input: classify + decide + context JSON", |b| {
        b.iter(|| {
            let d = orchestrator::decide(&ctx, &Input::new(black_box(INPUTS[2])), 1).unwrap();
            serde_json::to_vec(&d.context).unwrap()
        })
    });
    let json = serde_json::to_vec(&ctx).unwrap();
    c.bench_function("context from JSON", |b| {
        b.iter(|| serde_json::from_slice::<TeachingContext>(black_box(&json)).unwrap())
    });
    println!("context JSON: {} bytes", json.len());
}

criterion_group!(benches, orchestrator_benches);
criterion_main!(benches);
