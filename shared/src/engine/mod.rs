//! The pure psychometric engine of lectern: item response theory (4PL, logistic
//! metric D = 1) and computerized adaptive testing.
//!
//! No I/O, no global state, no logging: every function is a deterministic function
//! of its arguments (randomness comes from explicit seeds), and none panics on valid
//! input; estimates are always finite and MLE/MAP stay within [−6, 6].
//!
//! - [`model`]: item parameters, response probability, Fisher information.
//! - [`bank`]: the item bank (struct-of-arrays) with concept tags.
//! - [`estimate`]: EAP, MAP and MLE ability estimators.
//! - [`select`]: maximum-information and randomesque item selection.
//! - [`stop`]: stop rules.
//! - [`cat`]: one step of an adaptive test, per-concept estimates.
#![warn(missing_docs)]

pub mod bank;
pub mod cat;
pub mod estimate;
pub mod model;
pub mod select;
pub mod stop;

pub use bank::ItemBank;
pub use cat::{Cat, Step, concept_estimates};
pub use estimate::{Eap, Estimate, Estimator, Map, Mle, NormalPrior, THETA_MAX, THETA_MIN};
pub use model::{ItemParams, ParamError};
pub use select::{MaxInfo, Randomesque, Selector};
pub use stop::{StopReason, StopRule};
