//! When an adaptive test ends.

/// Stop rule: the test stops once any of its criteria fires, but never before
/// `min_items` answers:
/// - `max_items` answers reached;
/// - the SE is at or below `se_target`;
/// - the confidence interval θ̂ ± z·SE lies wholly on one side of a cut score
///   (`classify`, the classification CAT of Spray & Reckase 1994 / Eggen 1999).
///
/// `min_items` wins over `max_items` if they conflict. Running out of items is
/// detected by [`Cat::step`](super::Cat::step), not here. `Default` is a fixed
/// 20-item test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    /// Hard cap on the number of answered items.
    pub max_items: usize,
    /// No stop, for any reason, before this many answers.
    pub min_items: usize,
    /// Stop once the standard error is at or below this value (variable-length test).
    pub se_target: Option<f64>,
    /// Stop once the examinee is classified against a cut score.
    pub classify: Option<Classify>,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            max_items: 20,
            min_items: 0,
            se_target: None,
            classify: None,
        }
    }
}

/// Classification against a cut score at a confidence level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classify {
    /// The cut score on the θ scale.
    pub cut: f64,
    /// Half-width of the interval in SEs (1.96 for a two-sided 95 % interval).
    pub z: f64,
}

impl Classify {
    /// Cut score `cut` with a two-sided confidence `level` in (0, 1), e.g. 0.95 → z = 1.96.
    /// A level outside (0, 1) or NaN is read as 0.95.
    pub fn new(cut: f64, level: f64) -> Classify {
        let level = if level > 0.0 && level < 1.0 {
            level
        } else {
            0.95
        };
        Classify {
            cut,
            z: normal_quantile(0.5 + level / 2.0),
        }
    }

    /// Which side of the cut the interval θ ± z·se lies on, if it excludes the cut.
    pub fn decide(&self, theta: f64, se: f64) -> Option<Side> {
        if theta - self.z * se > self.cut {
            Some(Side::Above)
        } else if theta + self.z * se < self.cut {
            Some(Side::Below)
        } else {
            None
        }
    }
}

/// The side of a cut score a classification lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Confidently above the cut (e.g. pass).
    Above,
    /// Confidently below the cut (e.g. fail).
    Below,
}

/// Why a test stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// `max_items` answers were reached.
    MaxItems,
    /// The standard error reached `se_target`.
    SeTarget,
    /// The confidence interval excluded the cut score.
    Classified(Side),
    /// Every eligible item of the bank has been administered.
    BankExhausted,
}

impl StopReason {
    /// Snake-case name, as the API and the tool report it.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::MaxItems => "max_items",
            StopReason::SeTarget => "se_target",
            StopReason::Classified(Side::Above) => "classified_above",
            StopReason::Classified(Side::Below) => "classified_below",
            StopReason::BankExhausted => "bank_exhausted",
        }
    }
}

impl StopRule {
    /// Whether to stop after `answered` answers with estimate `theta` ± `se`.
    ///
    /// When several criteria are met, the first in the order max items, SE target,
    /// classification is reported. A NaN `se` meets neither the SE target nor the
    /// classification.
    pub fn check(&self, answered: usize, theta: f64, se: f64) -> Option<StopReason> {
        if answered < self.min_items {
            None
        } else if answered >= self.max_items {
            Some(StopReason::MaxItems)
        } else if self.se_target.is_some_and(|target| se <= target) {
            Some(StopReason::SeTarget)
        } else {
            self.classify
                .and_then(|c| c.decide(theta, se))
                .map(StopReason::Classified)
        }
    }
}

/// Quantile of the standard normal distribution, by Acklam's rational
/// approximation (relative error below 1.15e-9, ample for confidence levels).
/// `p` at or beyond 0 or 1 gives ∓inf/±inf; NaN gives NaN.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const LOW: f64 = 0.02425;
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_items: usize, min_items: usize, se_target: Option<f64>) -> StopRule {
        StopRule {
            max_items,
            min_items,
            se_target,
            classify: None,
        }
    }

    #[test]
    fn fixed_length() {
        let rule = rule(10, 0, None);
        assert_eq!(rule.check(0, 0.0, 0.0), None);
        assert_eq!(rule.check(9, 0.0, 0.01), None);
        assert_eq!(rule.check(10, 0.0, 5.0), Some(StopReason::MaxItems));
        assert_eq!(rule.check(11, 0.0, 5.0), Some(StopReason::MaxItems));
    }

    #[test]
    fn se_target_and_min_items() {
        let rule = rule(30, 5, Some(0.3));
        assert_eq!(rule.check(3, 0.0, 0.1), None, "never before min_items");
        assert_eq!(rule.check(5, 0.0, 0.3), Some(StopReason::SeTarget));
        assert_eq!(rule.check(6, 0.0, 0.31), None);
        assert_eq!(rule.check(6, 0.0, f64::NAN), None);
        assert_eq!(rule.check(30, 0.0, 0.1), Some(StopReason::MaxItems));
    }

    #[test]
    fn min_items_wins_over_max_items() {
        let rule4 = rule(2, 4, None);
        assert_eq!(rule4.check(3, 0.0, 0.0), None);
        assert_eq!(rule4.check(4, 0.0, 0.0), Some(StopReason::MaxItems));
        assert_eq!(
            rule(0, 0, None).check(0, 0.0, 1.0),
            Some(StopReason::MaxItems)
        );
    }

    #[test]
    fn classification_against_a_cut_score() {
        let c = Classify::new(0.5, 0.95);
        assert!((c.z - 1.959964).abs() < 1e-6, "{}", c.z);
        let r = StopRule {
            classify: Some(c),
            ..rule(40, 5, None)
        };
        // 1.3 − 1.96·0.4 = 0.516 > 0.5: above; 1.2 − 0.784 = 0.416: undecided.
        assert_eq!(
            r.check(6, 1.3, 0.4),
            Some(StopReason::Classified(Side::Above))
        );
        assert_eq!(r.check(6, 1.2, 0.4), None);
        assert_eq!(
            r.check(6, -0.3, 0.4),
            Some(StopReason::Classified(Side::Below))
        );
        assert_eq!(r.check(4, -3.0, 0.1), None, "never before min_items");
        assert_eq!(r.check(6, -3.0, f64::NAN), None);
        // Combined with an SE target: whichever fires first.
        let both = StopRule {
            se_target: Some(0.2),
            ..r
        };
        assert_eq!(both.check(6, 0.5, 0.19), Some(StopReason::SeTarget));
        assert_eq!(
            both.check(6, 2.0, 0.3),
            Some(StopReason::Classified(Side::Above))
        );
        // Nonsense levels fall back to 95 %.
        assert_eq!(Classify::new(0.0, 1.5).z, c.z);
        assert_eq!(
            StopReason::Classified(Side::Below).name(),
            "classified_below"
        );
    }

    #[test]
    fn normal_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.995, 2.5758293035489),
            (0.9, 1.2815515655446004),
            (0.01, -2.3263478740408408),
            (1e-6, -4.753424308822899),
        ] {
            let got = normal_quantile(p);
            assert!(
                (got - z).abs() < 1e-8 * z.abs().max(1.0),
                "{p}: {got} vs {z}"
            );
        }
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
    }
}
