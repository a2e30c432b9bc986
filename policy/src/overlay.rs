//! Changes that act before the next snapshot: revocations (R6) and temporary grants (R11).

use crate::activity::Activity;
use crate::bundle::Scope;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Urgent changes applied on top of a compiled snapshot, consulted on every check.
///
/// The server keeps one immutable `Overlay` behind an atomic pointer and replaces it
/// on each change (copy on write), so a check sees one consistent overlay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlay {
    /// Principals denied from now on, whatever the snapshot says (R6).
    pub revoked: BTreeSet<String>,
    /// Temporary grants by principal id (R11).
    pub temporary: BTreeMap<String, Vec<TemporaryGrant>>,
    /// Number of the last change this overlay includes (the server's consistency token).
    #[serde(default)]
    pub seq: u64,
    /// Authentications the server observed (R7): an account the bundle calls dormant is
    /// not, when one of these falls within the cut-off. Shared, not serialized.
    #[serde(skip)]
    pub activity: Activity,
}

/// A grant added since the snapshot, always with an expiry (R11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryGrant {
    /// Id reported in decisions.
    pub id: String,
    /// Grantee.
    pub principal: String,
    /// Role name; a role the snapshot does not define makes the grant inert.
    pub role: String,
    /// What it reaches.
    pub scope: Scope,
    /// Inert before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Inert from this time on.
    pub expires: Timestamp,
}

impl Overlay {
    /// An overlay that changes nothing.
    pub fn empty() -> &'static Overlay {
        static EMPTY: std::sync::OnceLock<Overlay> = std::sync::OnceLock::new();
        EMPTY.get_or_init(Overlay::default)
    }

    /// Whether `principal` was revoked (R6).
    pub fn is_revoked(&self, principal: &str) -> bool {
        !self.revoked.is_empty() && self.revoked.contains(principal)
    }

    /// R7: whether an account whose bundle `last` activity is more than `cutoff` before
    /// `now` has no observed authentication within the cut-off either.
    pub fn is_dormant(&self, principal: &str, last: Timestamp, cutoff: crate::time::Seconds, now: Timestamp) -> bool {
        now.exceeds(last, cutoff)
            && self
                .activity
                .latest(principal)
                .is_none_or(|seen| now.exceeds(seen, cutoff))
    }

    /// Temporary grants of `principal`, in the order they were added.
    pub fn temporary_for(&self, principal: &str) -> &[TemporaryGrant] {
        if self.temporary.is_empty() {
            return &[];
        }
        self.temporary.get(principal).map_or(&[], Vec::as_slice)
    }

    /// Drops temporary grants that expired before `now`.
    pub fn prune(&mut self, now: Timestamp) {
        for grants in self.temporary.values_mut() {
            grants.retain(|g| g.expires > now);
        }
        self.temporary.retain(|_, grants| !grants.is_empty());
    }
}
