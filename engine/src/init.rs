//! Where a test starts: the θ that picks the first item and the prior the
//! Bayesian estimators (EAP, MAP) use.

use super::estimate::{Estimate, NormalPrior};

/// The start of one test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Start {
    /// θ before any answer: the first item is the best one here.
    pub theta: f64,
    /// Prior for EAP and MAP (ignored by MLE and WLE).
    pub prior: NormalPrior,
}

/// Chooses a test's [`Start`].
pub trait Initializer {
    /// The start.
    fn start(&self) -> Start;
}

/// A fixed starting θ with the standard normal prior (catsim's
/// `FixedPointInitializer`; catR's `startSelect` with one fixed θ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedTheta(pub f64);

impl Initializer for FixedTheta {
    fn start(&self) -> Start {
        let theta = if self.0.is_finite() { self.0 } else { 0.0 };
        Start {
            theta: theta.clamp(super::THETA_MIN, super::THETA_MAX),
            prior: NormalPrior::default(),
        }
    }
}

/// Starts from the student's long-term proficiency θ̂ ± se: the prior is N(θ̂, sd²)
/// with sd = se clamped to [[`FromProficiency::MIN_SD`], 1], so that one old, precise
/// test cannot pin the next one (ability moves between tests) and a vague one is
/// no weaker than N(·, 1). Without a history (or a non-finite one): N(0, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FromProficiency {
    /// The student's last overall estimate, if any.
    pub history: Option<Estimate>,
}

impl FromProficiency {
    /// The narrowest prior a history can give.
    pub const MIN_SD: f64 = 0.5;
}

impl Initializer for FromProficiency {
    fn start(&self) -> Start {
        let prior = match self.history {
            Some(e) if e.theta.is_finite() && e.se.is_finite() => NormalPrior {
                mean: e.theta.clamp(super::THETA_MIN, super::THETA_MAX),
                sd: e.se.clamp(Self::MIN_SD, 1.0),
            },
            _ => NormalPrior::default(),
        };
        Start {
            theta: prior.mean,
            prior,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_theta() {
        assert_eq!(
            FixedTheta(-1.5).start(),
            Start {
                theta: -1.5,
                prior: NormalPrior::default()
            }
        );
        assert_eq!(FixedTheta(40.0).start().theta, 6.0);
        assert_eq!(FixedTheta(f64::NAN).start().theta, 0.0);
    }

    #[test]
    fn from_proficiency() {
        let none = FromProficiency { history: None }.start();
        assert_eq!(none.prior, NormalPrior::default());
        assert_eq!(none.theta, 0.0);
        let s = FromProficiency {
            history: Some(Estimate {
                theta: 1.2,
                se: 0.4,
            }),
        }
        .start();
        assert_eq!(s.theta, 1.2);
        assert_eq!(s.prior.sd, 0.5);
        let mid = FromProficiency {
            history: Some(Estimate {
                theta: 0.0,
                se: 0.7,
            }),
        };
        assert_eq!(mid.start().prior.sd, 0.7);
        let narrow = FromProficiency {
            history: Some(Estimate {
                theta: 9.0,
                se: 0.01,
            }),
        }
        .start();
        assert_eq!(
            (narrow.theta, narrow.prior.sd),
            (6.0, FromProficiency::MIN_SD)
        );
        let wide = FromProficiency {
            history: Some(Estimate {
                theta: 0.3,
                se: 3.0,
            }),
        }
        .start();
        assert_eq!(wide.prior.sd, 1.0);
        let nan = FromProficiency {
            history: Some(Estimate {
                theta: f64::NAN,
                se: 0.3,
            }),
        }
        .start();
        assert_eq!(nan.prior, NormalPrior::default());
    }
}
