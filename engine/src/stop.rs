//! When an adaptive test ends.

/// Stop rule: the test stops once any of its criteria fires, but never before
/// `min_items` answers:
/// - `max_items` answers reached;
/// - the SE is at or below `se_target`;
/// - the confidence interval θ̂ ± z·SE lies wholly on one side of a cut score
///   (`classify`, the classification CAT of Spray & Reckase 1994 / Eggen 1999);
/// - the confidence interval lies wholly inside one performance level (`levels`,
///   the same rule with several cut scores).
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
    /// Stop once the examinee is placed in one performance level.
    pub levels: Option<Levels>,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            max_items: 20,
            min_items: 0,
            se_target: None,
            classify: None,
            levels: None,
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

/// Most cut scores a [`Levels`] rule takes (so at most 9 levels); the cuts live
/// inline so that [`StopRule`] stays `Copy`.
pub const MAX_LEVEL_CUTS: usize = 8;

/// Performance levels: cut scores θ₁ < θ₂ < … < θₖ split the scale into k + 1
/// levels, level 0 below θ₁ and level j from θⱼ (inclusive) up to θⱼ₊₁. As a stop
/// rule it generalizes [`Classify`] to several cuts: the test stops once the
/// interval θ̂ ± z·SE contains no cut score, z being the two-sided quantile of the
/// confidence (0.95 → 1.959964), exactly as for [`Classify`]. An interval that
/// touches a cut is undecided, as in [`Classify::decide`]; with one cut the two
/// rules agree (level 1 is [`Side::Above`]).
#[derive(Clone, Copy, PartialEq)]
pub struct Levels {
    /// `cuts[..len]` are the cut scores, strictly increasing; the rest is 0.
    cuts: [f64; MAX_LEVEL_CUTS],
    len: usize,
    z: f64,
}

impl Levels {
    /// Levels split at `cuts` (1 to [`MAX_LEVEL_CUTS`], finite, strictly
    /// increasing), decided at a two-sided `confidence` in (0.5, 1).
    pub fn new(cuts: &[f64], confidence: f64) -> Result<Levels, String> {
        if cuts.is_empty() || cuts.len() > MAX_LEVEL_CUTS {
            return Err(format!(
                "performance levels need 1 to {MAX_LEVEL_CUTS} cut scores (got {})",
                cuts.len()
            ));
        }
        if let Some(bad) = cuts.iter().find(|c| !c.is_finite()) {
            return Err(format!("cut score {bad} is not a finite number"));
        }
        if let Some(w) = cuts.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!(
                "cut scores must be strictly increasing ({} is followed by {})",
                w[0], w[1]
            ));
        }
        if !(confidence > 0.5 && confidence < 1.0) {
            return Err(format!(
                "confidence must lie strictly between 0.5 and 1 (got {confidence})"
            ));
        }
        let mut inline = [0.0; MAX_LEVEL_CUTS];
        inline[..cuts.len()].copy_from_slice(cuts);
        Ok(Levels {
            cuts: inline,
            len: cuts.len(),
            z: normal_quantile(0.5 + confidence / 2.0),
        })
    }

    /// The cut scores, increasing.
    pub fn cuts(&self) -> &[f64] {
        &self.cuts[..self.len]
    }

    /// Half-width of the interval in SEs (1.959964 for 95 %).
    pub fn z(&self) -> f64 {
        self.z
    }

    /// The level of `theta`, in `0..=cuts().len()`: the number of cuts at or below
    /// it (θ ≥ cut k, counting from 0, puts θ at level k + 1 or higher). NaN is level 0.
    pub fn level_of(&self, theta: f64) -> usize {
        self.cuts().iter().take_while(|&&c| theta >= c).count()
    }

    /// The level the interval θ ± z·se lies wholly inside, if it contains no cut
    /// (a cut on its edge counts as inside it). A NaN θ or SE decides nothing.
    pub fn decide(&self, theta: f64, se: f64) -> Option<usize> {
        if theta.is_nan() || se.is_nan() {
            return None;
        }
        let (lo, hi) = (theta - self.z * se, theta + self.z * se);
        // Cuts strictly below lo, and cuts at or below hi: equal when none is in [lo, hi].
        let below = self.cuts().iter().take_while(|&&c| c < lo).count();
        let through = self.cuts().iter().take_while(|&&c| c <= hi).count();
        (below == through).then_some(below)
    }
}

impl std::fmt::Debug for Levels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Levels")
            .field("cuts", &self.cuts())
            .field("z", &self.z)
            .finish()
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
    /// The confidence interval lies inside this performance level (see [`Levels`]).
    Level(usize),
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
            StopReason::Level(_) => "classified",
        }
    }
}

impl StopRule {
    /// Whether to stop after `answered` answers with estimate `theta` ± `se`.
    ///
    /// When several criteria are met, the first in the order max items, SE target,
    /// classification, performance level is reported. A NaN `se` meets neither the
    /// SE target nor the classifications.
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
                .or_else(|| {
                    self.levels
                        .and_then(|l| l.decide(theta, se))
                        .map(StopReason::Level)
                })
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
            levels: None,
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
    fn level_z_matches_the_reference_quantile() {
        // Φ⁻¹(0.975) = 1.959963984540054 (two-sided 95 %), as for Classify.
        let l = Levels::new(&[0.0], 0.95).unwrap();
        assert!((l.z() - 1.959963984540054).abs() < 1e-8, "{}", l.z());
        assert_eq!(l.z(), Classify::new(0.0, 0.95).z);
        // Φ⁻¹(0.95) = 1.6448536269514722 (two-sided 90 %).
        let l = Levels::new(&[0.0], 0.90).unwrap();
        assert!((l.z() - 1.6448536269514722).abs() < 1e-8, "{}", l.z());
    }

    #[test]
    fn level_of_boundaries() {
        let l = Levels::new(&[-1.0, 0.0, 1.5], 0.95).unwrap();
        assert_eq!(l.cuts(), &[-1.0, 0.0, 1.5]);
        for (theta, level) in [
            (f64::NEG_INFINITY, 0),
            (-1.0 - 1e-12, 0),
            (-1.0, 1),
            (-0.5, 1),
            (-1e-300, 1),
            (0.0, 2),
            (1.5 - 1e-12, 2),
            (1.5, 3),
            (6.0, 3),
            (f64::INFINITY, 3),
            (f64::NAN, 0),
        ] {
            assert_eq!(l.level_of(theta), level, "θ = {theta}");
        }
    }

    #[test]
    fn levels_reject_bad_cuts_and_confidence() {
        for (cuts, conf, needle) in [
            (&[][..], 0.95, "1 to 8 cut scores"),
            (&[0.0; 9][..], 0.95, "1 to 8 cut scores"),
            (&[0.0, f64::NAN][..], 0.95, "not a finite number"),
            (&[f64::INFINITY][..], 0.95, "not a finite number"),
            (
                &[0.0, 0.0][..],
                0.95,
                "strictly increasing (0 is followed by 0)",
            ),
            (&[1.0, -1.0][..], 0.95, "strictly increasing"),
            (&[0.0][..], 0.5, "between 0.5 and 1"),
            (&[0.0][..], 1.0, "between 0.5 and 1"),
            (&[0.0][..], f64::NAN, "between 0.5 and 1"),
        ] {
            let err = Levels::new(cuts, conf).unwrap_err();
            assert!(err.contains(needle), "{cuts:?} {conf}: {err}");
        }
        assert!(Levels::new(&[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 0.51).is_ok());
    }

    #[test]
    fn levels_stop_inside_a_level_only() {
        let levels = Levels::new(&[-1.0, 1.0], 0.95).unwrap();
        let z = levels.z();
        let r = StopRule {
            levels: Some(levels),
            ..rule(40, 5, None)
        };
        // 0 ± 1.96·0.5 = [−0.98, 0.98]: inside level 1.
        assert_eq!(r.check(6, 0.0, 0.5), Some(StopReason::Level(1)));
        // 0.2 ± 0.98 = [−0.78, 1.18] straddles the cut at 1: go on.
        assert_eq!(r.check(6, 0.2, 0.5), None);
        assert_eq!(r.check(6, -2.5, 0.5), Some(StopReason::Level(0)));
        assert_eq!(r.check(6, 2.5, 0.5), Some(StopReason::Level(2)));
        assert_eq!(r.check(6, -1.5, 0.5), None, "straddles −1");
        // An interval whose edge touches a cut is undecided, as with Classify.
        assert_eq!(levels.decide(1.0 + z * 0.5, 0.5), None);
        assert_eq!(levels.decide(1.0 + z * 0.5 + 1e-9, 0.5), Some(2));
        assert_eq!(r.check(4, 0.0, 0.01), None, "never before min_items");
        assert_eq!(r.check(6, 0.0, f64::NAN), None);
        assert_eq!(r.check(6, f64::NAN, 0.1), None);
        assert_eq!(r.check(6, 0.0, f64::INFINITY), None);
        assert_eq!(r.check(40, 0.2, 0.5), Some(StopReason::MaxItems));
        assert_eq!(StopReason::Level(2).name(), "classified");
        // With one cut it agrees with Classify.
        let one = Levels::new(&[0.5], 0.95).unwrap();
        let c = Classify::new(0.5, 0.95);
        for theta in [-1.0, 0.0, 0.4, 0.5, 1.2, 1.3, 2.0] {
            for se in [0.05, 0.2, 0.4] {
                let expected = c.decide(theta, se).map(|s| match s {
                    Side::Above => 1,
                    Side::Below => 0,
                });
                assert_eq!(one.decide(theta, se), expected, "{theta} ± {se}");
            }
        }
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
