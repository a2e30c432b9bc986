//! The overlay as a log of changes (R6 revocations, R11 temporary grants) and its fold.

use portcullis_policy::{Activity, Overlay, Scope, TemporaryGrant, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a revocation was made (R6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Stated reason.
    pub reason: String,
    /// Who revoked.
    pub author: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// One change to the overlay, as logged. A temporary grant's id is `temporary-<seq>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum OverlayChange {
    /// R6: deny the principal from now on.
    Revoke {
        /// The principal.
        principal: String,
        /// Why, who and when.
        #[serde(flatten)]
        revocation: Revocation,
    },
    /// Lift a revocation.
    Reinstate {
        /// The principal.
        principal: String,
        /// Why, who and when.
        #[serde(flatten)]
        revocation: Revocation,
    },
    /// R11: a grant until `expires`.
    Grant {
        /// Grantee.
        principal: String,
        /// Role name.
        role: String,
        /// What it reaches.
        scope: Scope,
        /// Inert from then on.
        expires: Timestamp,
        /// Why, who and when.
        #[serde(flatten)]
        revocation: Revocation,
    },
}

impl OverlayChange {
    /// Who made the change and why (for the change log, A4).
    pub fn provenance(&self) -> &Revocation {
        match self {
            OverlayChange::Revoke { revocation, .. }
            | OverlayChange::Reinstate { revocation, .. }
            | OverlayChange::Grant { revocation, .. } => revocation,
        }
    }
}

/// The overlay folded from its changes, as of change number `seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverlayState {
    /// Revoked principals, until explicitly reinstated.
    pub revoked: BTreeMap<String, Revocation>,
    /// Temporary grants, until they expire.
    pub temporary: Vec<TemporaryGrant>,
    /// Number of the last change applied (older data directories called it `next_id`).
    #[serde(alias = "next_id")]
    pub seq: u64,
}

impl OverlayState {
    /// Applies change number `seq`. Expired temporary grants are dropped on the way.
    pub fn apply(&mut self, seq: u64, change: &OverlayChange, now: Timestamp) {
        match change {
            OverlayChange::Revoke { principal, revocation } => {
                self.revoked.insert(principal.clone(), revocation.clone());
            }
            OverlayChange::Reinstate { principal, .. } => {
                self.revoked.remove(principal);
            }
            OverlayChange::Grant {
                principal,
                role,
                scope,
                expires,
                ..
            } => self.temporary.push(TemporaryGrant {
                id: format!("temporary-{seq}"),
                principal: principal.clone(),
                role: role.clone(),
                scope: scope.clone(),
                not_before: None,
                expires: *expires,
            }),
        }
        self.temporary.retain(|g| g.expires > now);
        self.seq = seq;
    }

    /// The form checks consult, with the server's observed `activity` (R7).
    pub fn overlay(&self, activity: &Activity) -> Overlay {
        let mut o = Overlay {
            seq: self.seq,
            activity: activity.clone(),
            ..Overlay::default()
        };
        o.revoked.extend(self.revoked.keys().cloned());
        for g in &self.temporary {
            o.temporary.entry(g.principal.clone()).or_default().push(g.clone());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(at: i64) -> Revocation {
        Revocation {
            reason: "r".into(),
            author: "a".into(),
            at,
        }
    }

    #[test]
    fn changes_fold_in_order_and_grants_take_their_sequence_as_id() {
        let mut s = OverlayState::default();
        let grant = OverlayChange::Grant {
            principal: "jo".into(),
            role: "clinician".into(),
            scope: Scope::All,
            expires: Timestamp(200),
            revocation: who(100),
        };
        s.apply(1, &grant, Timestamp(100));
        s.apply(
            2,
            &OverlayChange::Revoke {
                principal: "ann".into(),
                revocation: who(100),
            },
            Timestamp(100),
        );
        assert_eq!(s.seq, 2);
        assert_eq!(s.temporary[0].id, "temporary-1");
        assert!(s.overlay(&Activity::default()).is_revoked("ann"));
        s.apply(
            3,
            &OverlayChange::Reinstate {
                principal: "ann".into(),
                revocation: who(150),
            },
            Timestamp(200),
        );
        assert!(!s.overlay(&Activity::default()).is_revoked("ann"));
        assert!(s.temporary.is_empty(), "expired at 200");
    }

    #[test]
    fn changes_round_trip_through_json_and_old_states_still_read() {
        let c = OverlayChange::Revoke {
            principal: "ann".into(),
            revocation: who(7),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"change":"revoke","principal":"ann","reason":"r","author":"a","at":7}"#
        );
        assert_eq!(serde_json::from_str::<OverlayChange>(&text).unwrap(), c);
        let old: OverlayState = serde_json::from_str(r#"{"revoked":{},"temporary":[],"next_id":4}"#).unwrap();
        assert_eq!(old.seq, 4);
    }
}
