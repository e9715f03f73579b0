//! lectern: computerized adaptive tests (IRT/CAT) and tutoring sessions,
//! served as AWS Lambda functions over Redis (hot state) and PostgreSQL (truth).
//!
//! Every Lambda function and the local server are thin wrappers over this crate.

pub mod ai;
pub mod api;
pub mod app;
pub mod aws;
pub mod cache;
pub mod config;
pub mod digest;
mod env;
pub mod lambda;
pub mod local;
pub mod semantic;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod wire;

/// The psychometric engine (its own crate, pure): `lectern::engine::…` paths keep working.
pub use lectern_engine as engine;
/// The teaching orchestrator (its own crate, pure).
pub use lectern_orchestrator as orchestrator;

pub use app::App;
pub use config::Config;
