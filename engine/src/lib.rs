//! The pure psychometric engine of lectern: item response theory (dichotomous
//! 1PL–4PL and polytomous GRM, GPCM and PCM items, mixed freely; logistic metric
//! D = 1) and computerized adaptive testing.
//!
//! No I/O, no global state, no logging: every function is a deterministic function
//! of its arguments (randomness comes from explicit seeds), and none panics on valid
//! input; estimates are always finite and MLE/MAP stay within [−6, 6].
//!
//! - [`model`]: dichotomous item parameters, response probability, Fisher
//!   information.
//! - [`item`]: [`Item`], an item of any model.
//! - [`poly`]: the polytomous models (graded response, generalized and plain
//!   partial credit).
//! - [`bank`]: the item bank (struct-of-arrays) with concept tags.
//! - [`init`]: where a test starts (fixed θ, or the student's proficiency).
//! - [`estimate`]: EAP, MAP, MLE and WLE ability estimators.
//! - [`select`]: maximum information, randomesque, content balancing and
//!   Sympson–Hetter exposure control.
//! - [`stop`]: stop rules (length, SE target, classification, performance
//!   levels), combined.
//! - [`constraints`]: content constraints (blueprint minimums/maximums per
//!   concept, enemy items) that narrow selection and hold the stop.
//! - [`cat`]: one step of an adaptive test, per-concept estimates.
//! - [`pretest`]: which uncalibrated items a test carries, and where, from its seed.
//! - [`calibrate`]: item calibration by marginal maximum likelihood (EM).
//! - [`sim`]: Monte Carlo simulation of many tests and its statistics.
#![warn(missing_docs)]

pub mod bank;
pub mod calibrate;
pub mod cat;
pub mod constraints;
pub mod estimate;
pub mod init;
pub mod item;
pub mod model;
pub mod poly;
pub mod pretest;
pub mod select;
pub mod sim;
pub mod stop;

pub use bank::ItemBank;
pub use cat::{Cat, Step, concept_estimates};
pub use constraints::Constraints;
pub use estimate::{
    Eap, Estimate, Estimator, EstimatorKind, Map, Mle, NormalPrior, Posterior, THETA_MAX,
    THETA_MIN, Wle,
};
pub use init::{FixedTheta, FromProficiency, Initializer, Start};
pub use item::Item;
pub use model::{ItemParams, ParamError};
pub use poly::{MAX_CATEGORIES, PolyModel, PolyParams};
pub use pretest::PretestPlan;
pub use select::{Candidates, ContentBalanced, MaxInfo, Randomesque, Selector, SympsonHetter};
pub use stop::{Classify, Levels, Side, StopReason, StopRule};
