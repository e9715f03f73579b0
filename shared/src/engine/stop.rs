//! When an adaptive test ends.

/// Stop rule: stop when `answered >= max_items`, or when `se_target` is set and the
/// current SE is at or below it, but never before `min_items` answers.
///
/// `min_items` wins over `max_items` if they conflict. Running out of items is
/// detected by [`Cat::step`](super::Cat::step), not here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    /// Hard cap on the number of answered items.
    pub max_items: usize,
    /// No stop, for any reason, before this many answers.
    pub min_items: usize,
    /// Stop once the standard error is at or below this value (variable-length test).
    pub se_target: Option<f64>,
}

/// Why a test stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// `max_items` answers were reached.
    MaxItems,
    /// The standard error reached `se_target`.
    SeTarget,
    /// Every item of the bank has been administered.
    BankExhausted,
}

impl StopRule {
    /// Whether to stop after `answered` answers with standard error `se`.
    ///
    /// When both limits are met, `MaxItems` is reported. A NaN `se` never meets
    /// the target.
    pub fn check(&self, answered: usize, se: f64) -> Option<StopReason> {
        if answered < self.min_items {
            None
        } else if answered >= self.max_items {
            Some(StopReason::MaxItems)
        } else if self.se_target.is_some_and(|target| se <= target) {
            Some(StopReason::SeTarget)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_length() {
        let rule = StopRule {
            max_items: 10,
            min_items: 0,
            se_target: None,
        };
        assert_eq!(rule.check(0, 0.0), None);
        assert_eq!(rule.check(9, 0.01), None);
        assert_eq!(rule.check(10, 5.0), Some(StopReason::MaxItems));
        assert_eq!(rule.check(11, 5.0), Some(StopReason::MaxItems));
    }

    #[test]
    fn se_target_and_min_items() {
        let rule = StopRule {
            max_items: 30,
            min_items: 5,
            se_target: Some(0.3),
        };
        assert_eq!(rule.check(3, 0.1), None, "never before min_items");
        assert_eq!(rule.check(5, 0.3), Some(StopReason::SeTarget));
        assert_eq!(rule.check(6, 0.31), None);
        assert_eq!(rule.check(6, f64::NAN), None);
        assert_eq!(rule.check(30, 0.1), Some(StopReason::MaxItems));
    }

    #[test]
    fn min_items_wins_over_max_items() {
        let rule = StopRule {
            max_items: 2,
            min_items: 4,
            se_target: None,
        };
        assert_eq!(rule.check(3, 0.0), None);
        assert_eq!(rule.check(4, 0.0), Some(StopReason::MaxItems));
        let zero = StopRule {
            max_items: 0,
            min_items: 0,
            se_target: None,
        };
        assert_eq!(zero.check(0, 1.0), Some(StopReason::MaxItems));
    }
}
