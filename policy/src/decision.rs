//! The answer: allow or deny, why (tied to a rule id), which rule matched, and an optional trace.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request must not proceed.
    Deny,
}

impl std::fmt::Display for Effect {
    /// `allow` or `deny`, as files and the API spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        })
    }
}

/// Declares `Reason` with, for each code, its wire name and the requirement it enforces,
/// so the enum, `ALL`, `as_str` and `rule_id` cannot drift apart.
macro_rules! reasons {
    ($( #[doc = $doc:literal] $name:ident = $text:literal, $rule:literal; )*) => {
        /// Why a decision came out as it did. Each code names the rule of `docs/rules.md` it enforces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Reason {
            $( #[doc = $doc] #[serde(rename = $text)] $name, )*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The requirement id this reason enforces (`R1`..`R19`, `A1`).
            pub fn rule_id(self) -> &'static str {
                match self { $(Reason::$name => $rule,)* }
            }

            /// The snake_case name used in files, logs and the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$name => $text,)* }
            }
        }
    };
}

reasons! {
    /// R2: a grant allows it.
    Granted = "granted", "R2";
    /// R19: the action is public on this resource type.
    PublicResource = "public_resource", "R19";
    /// R15: allowed by an emergency (break-glass) grant.
    BreakGlass = "break_glass", "R15";
    /// R1: no grant matches.
    NoMatchingGrant = "no_matching_grant", "R1";
    /// R1: the principal is not in the snapshot (or none was given).
    UnknownPrincipal = "unknown_principal", "R1";
    /// R1: the resource type is not in the snapshot.
    UnknownResourceType = "unknown_resource_type", "R1";
    /// R1: the action is not defined for the resource type.
    UnknownAction = "unknown_action", "R1";
    /// R6: revoked since the snapshot was built.
    PrincipalRevoked = "principal_revoked", "R6";
    /// R6: the account is terminated.
    AccountTerminated = "account_terminated", "R6";
    /// R6: the account is disabled.
    AccountDisabled = "account_disabled", "R6";
    /// R6: the account is locked.
    AccountLocked = "account_locked", "R6";
    /// R7: no activity for longer than the dormancy cut-off.
    AccountDormant = "account_dormant", "R7";
    /// R9: the session has been idle too long (or reports no activity).
    SessionIdle = "session_idle", "R9";
    /// R9: the authentication is older than the maximum age (or its time is missing).
    SessionExpired = "session_expired", "R9";
    /// R4: shared accounts never reach sensitive resources.
    SharedAccountSensitive = "shared_account_sensitive", "R4";
    /// R18: the session's network is not allowed for this resource type.
    NetworkNotAllowed = "network_not_allowed", "R18";
    /// R8: a second factor is required.
    MfaRequired = "mfa_required", "R8";
    /// R14: an explicit deny rule matches.
    ExplicitDeny = "explicit_deny", "R14";
    /// R16: the principal may not act as the requested account.
    ImpersonationNotAllowed = "impersonation_not_allowed", "R16";
    /// R15: only an emergency grant matches and no emergency reason was stated.
    BreakGlassReasonRequired = "break_glass_reason_required", "R15";
    /// R11: the matching grant is not yet valid.
    GrantNotYetValid = "grant_not_yet_valid", "R11";
    /// R11: the matching grant has expired.
    GrantExpired = "grant_expired", "R11";
    /// R7: the matching non-standard grant lapsed unused.
    GrantLapsed = "grant_lapsed", "R7";
    /// R10: the role is privileged and the session is not elevated into it.
    ElevationRequired = "elevation_required", "R10";
    /// R10: the elevation into the role is older than allowed.
    ElevationExpired = "elevation_expired", "R10";
    /// R13: the action needs a distinct, authorized co-signer.
    DualControlRequired = "dual_control_required", "R13";
    /// R1: the snapshot contradicts itself (a bug, never a policy outcome); denies.
    InternalError = "internal_error", "R1";
    /// A1: the audit trail could not take a record the decision needs; the server (never the engine) denies.
    AuditUnavailable = "audit_unavailable", "A1";
}

impl Reason {
    /// Rank of a grant-stage failure: when several grants match and none allows, the
    /// decision reports the failure that got furthest, so the answer is independent of
    /// grant order.
    pub(crate) fn grant_stage_rank(self) -> u8 {
        use Reason::*;
        match self {
            BreakGlassReasonRequired => 1,
            GrantNotYetValid => 2,
            GrantExpired => 3,
            GrantLapsed => 4,
            MfaRequired => 5,
            ElevationRequired => 6,
            ElevationExpired => 7,
            DualControlRequired => 8,
            InternalError => 9,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.rule_id())
    }
}

/// Markers an auditor must see on a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flags {
    /// R15: emergency access was used.
    pub break_glass: bool,
    /// R16: the principal acted as another account.
    pub impersonated: bool,
}

/// The rule behind a decision: a bundle grant or deny by position, or an overlay grant by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleRef {
    /// `grants[N]` of the bundle.
    Grant(u32),
    /// `denies[N]` of the bundle.
    Deny(u32),
    /// A temporary grant of the overlay, by its id.
    Temporary(Arc<str>),
}

/// A decision with everything needed to audit it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// Why.
    pub reason: Reason,
    /// The grant or deny rule that decided, when one did; name it with `Snapshot::rule_name`.
    pub rule: Option<RuleRef>,
    /// Snapshot version that decided.
    pub version: u64,
    /// Break-glass and impersonation markers.
    pub flags: Flags,
    /// Steps considered, when an explanation was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<String>>,
}

impl Decision {
    /// True for allow.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_and_rule_ids_agree() {
        for r in Reason::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{}\"", r.as_str()));
            assert!(r.rule_id().starts_with('R') || r.rule_id().starts_with('A'), "{r:?}");
        }
        assert_eq!(Reason::ALL.len(), 28);
    }
}
