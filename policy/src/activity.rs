//! R7: authentications the server has observed, so an account in use does not go dormant
//! just because nobody pushed its login times in a bundle.
//!
//! One table per server, shared by every overlay it publishes (the overlay is replaced on
//! each change; the table is not). Checks read it only for a principal the bundle already
//! calls dormant, so the common path pays nothing; the server raises an entry when it
//! allows a request whose session authenticated later than the entry says.

use crate::time::Timestamp;
use dashmap::DashMap;
use std::sync::Arc;

/// Latest observed authentication per principal id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    latest: Arc<DashMap<String, Timestamp>>,
}

impl Activity {
    /// The latest authentication observed for `principal`.
    pub fn latest(&self, principal: &str) -> Option<Timestamp> {
        if self.latest.is_empty() {
            return None;
        }
        self.latest.get(principal).map(|t| *t)
    }

    /// Records that `principal` authenticated at `at`; true when that is newer than what
    /// was known (the caller then has something to share).
    pub fn observe(&self, principal: &str, at: Timestamp) -> bool {
        if self.latest(principal).is_some_and(|t| t >= at) {
            return false;
        }
        let mut raised = false;
        self.latest
            .entry(principal.to_owned())
            .and_modify(|t| {
                if *t < at {
                    *t = at;
                    raised = true;
                }
            })
            .or_insert_with(|| {
                raised = true;
                at
            });
        raised
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> Vec<(String, Timestamp)> {
        self.latest.iter().map(|e| (e.key().clone(), *e.value())).collect()
    }

    /// Number of principals with an observation.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing has been observed.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// Two tables are equal when they hold the same observations.
impl PartialEq for Activity {
    fn eq(&self, other: &Activity) -> bool {
        self.len() == other.len() && self.latest.iter().all(|e| other.latest(e.key()) == Some(*e.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_only_move_forward_and_report_when_they_do() {
        let a = Activity::default();
        assert_eq!(a.latest("ann"), None);
        assert!(a.observe("ann", Timestamp(100)));
        assert!(!a.observe("ann", Timestamp(100)));
        assert!(!a.observe("ann", Timestamp(50)));
        assert_eq!(a.latest("ann"), Some(Timestamp(100)));
        assert!(a.observe("ann", Timestamp(200)));
        let shared = a.clone();
        assert_eq!(shared.latest("ann"), Some(Timestamp(200)));
        assert_eq!(a.entries(), vec![("ann".to_owned(), Timestamp(200))]);
        let other = Activity::default();
        assert_ne!(a, other);
        other.observe("ann", Timestamp(200));
        assert_eq!(a, other);
    }
}
