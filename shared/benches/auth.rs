//! What signing in and checking a token cost in CPU: argon2id hashing and
//! verification (on purpose the dominant cost of a login), and the per-request
//! work of a bearer token (SHA-256 of it) and a fresh token.
//!
//! Run: `cargo bench -p lectern --bench auth`.

use criterion::{Criterion, criterion_group, criterion_main};
use lectern::services::auth::{password, secret};

fn auth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let phc = rt.block_on(password::hash("correct horse battery staple"));
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.bench_function("argon2id hash", |b| {
        b.iter(|| rt.block_on(password::hash("correct horse battery staple")))
    });
    group.bench_function("argon2id verify", |b| {
        b.iter(|| {
            rt.block_on(password::verify(
                "correct horse battery staple",
                Some(phc.clone()),
            ))
        })
    });
    group.finish();
    let token = secret::random_token();
    c.bench_function("token sha256", |b| b.iter(|| secret::sha256_hex(&token)));
    c.bench_function("new token (OS RNG)", |b| b.iter(secret::random_token));
}

criterion_group!(benches, auth);
criterion_main!(benches);
