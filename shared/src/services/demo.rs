//! A demo item bank for local use: 3PL parameters drawn the way real banks
//! look (a log-normal around 1.1, b standard normal, c near 0.2), over five concepts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::store::pools::{self, ItemRole, Key, NewItem, Params, PoolSummary};
use crate::store::{StoreError, users};
use lectern_engine::ItemParams;

/// Name of the demo pool.
pub const POOL_NAME: &str = "Demo: arithmetic and algebra";
/// Email of the demo student.
pub const STUDENT_EMAIL: &str = "demo.student@lectern.local";
/// The concepts the demo items cover.
pub const CONCEPTS: [&str; 5] = [
    "arithmetic",
    "fractions",
    "algebra",
    "geometry",
    "statistics",
];

fn standard_normal(rng: &mut impl Rng) -> f64 {
    // Box–Muller: two uniforms give one standard normal draw.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` demo items, the same for the same seed.
pub fn items(n: usize, seed: u64) -> Vec<NewItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let a = (0.1 + 0.25 * standard_normal(&mut rng))
                .exp()
                .clamp(0.4, 2.5);
            let b = standard_normal(&mut rng).clamp(-3.0, 3.0);
            let c = rng.random_range(0.12..0.28);
            let x = rng.random_range(2..20);
            let y = rng.random_range(2..20);
            let answer = x * y;
            let mut options = [answer, answer + 1, answer - 1, answer + x]
                .map(|v| v.to_string())
                .to_vec();
            let correct_answer = options[0].clone();
            let shift = rng.random_range(0..options.len());
            options.rotate_left(shift);
            let concept = CONCEPTS[i % CONCEPTS.len()];
            NewItem {
                id: format!("demo-{i:04}"),
                content: format!("[{concept}] What is {x} × {y}?"),
                key: Key::Correct(correct_answer),
                options,
                concepts: vec![concept.to_string()],
                params: Params::Known(
                    ItemParams::new(a, b, c, 1.0)
                        .expect("drawn parameters are in range")
                        .into(),
                ),
                role: ItemRole::Operational { exposure: 1.0 },
            }
        })
        .collect()
}

/// What the demo set-up found or made.
pub struct Demo {
    /// The demo pool.
    pub pool: PoolSummary,
    /// The demo student's user id.
    pub student_id: uuid::Uuid,
    /// Whether the pool was created by this call.
    pub created: bool,
}

/// Loads the demo pool (240 items, shared with every organization, so that
/// anyone signed in may take a test on it) and student unless they exist already.
pub async fn ensure(db: &deadpool_postgres::Pool) -> Result<Demo, StoreError> {
    let student_id = users::ensure(db, STUDENT_EMAIL, "student").await?;
    if let Some(mut pool) = pools::find_by_name(db, POOL_NAME).await? {
        // Made before tenancy, it moved into the default organization.
        if pool.org_id.is_some() {
            pools::share(db, pool.id).await?;
            pool.org_id = None;
        }
        return Ok(Demo {
            pool,
            student_id,
            created: false,
        });
    }
    let pool = pools::create(
        db,
        None,
        POOL_NAME,
        Some("Generated 3PL items for trying lectern locally"),
        &items(240, 7),
    )
    .await?;
    Ok(Demo {
        pool,
        student_id,
        created: true,
    })
}
