//! What a brute-force semantic lookup costs: the exact scan
//! ([`lectern::semantic::nearest`]) and the two-pass [`lectern::semantic::Index`]
//! the cache uses, over 1,000, 3,000 and 5,000 stored questions embedded in 1,536 dimensions
//! (OpenAI's `text-embedding-3-small`), random unit vectors from a fixed seed.
//!
//! Run: `cargo bench -p lectern --bench semantic`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lectern::semantic::{Index, nearest, normalize};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMENSIONS: usize = 1_536;

/// A random unit vector (components uniform in -1..1, then normalised).
fn random_unit(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    normalize(&mut v);
    v
}

fn semantic(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let query = random_unit(&mut rng);
    let mut group = c.benchmark_group("nearest 1536d");
    for n in [1_000, 3_000, 5_000] {
        let set: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("exact", n), &set, |b, set| {
            b.iter(|| nearest(black_box(&query), black_box(set).iter().map(Vec::as_slice)))
        });
        let mut index = Index::new(DIMENSIONS);
        for v in &set {
            index.push(v.clone());
        }
        group.bench_with_input(BenchmarkId::new("index", n), &index, |b, index| {
            b.iter(|| black_box(index).nearest(black_box(&query)))
        });
    }
    group.finish();
}

criterion_group!(benches, semantic);
criterion_main!(benches);
