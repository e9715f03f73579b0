//! Every Redis key's format lives here (DESIGN §4). Braces are Redis Cluster
//! hash tags: all keys of one test share a slot, so one script can touch them.

use uuid::Uuid;

/// Builds keys under an optional deployment-wide prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with (used to scope scans and clean-up).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `test:{<id>}:state`: the hot state of an active adaptive test.
    pub fn test_state(&self, test: Uuid) -> String {
        format!("{}test:{{{test}}}:state", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_state_key_has_prefix_and_hash_tag() {
        let id = Uuid::nil();
        assert_eq!(
            Keys::new("dev:").test_state(id),
            format!("dev:test:{{{id}}}:state")
        );
        assert_eq!(Keys::new("").test_state(id), format!("test:{{{id}}}:state"));
    }
}
