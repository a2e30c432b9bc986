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

/// Why a decision came out as it did. Each code names the rule of REQUIREMENTS.md it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// R2: a grant allows it.
    Granted,
    /// R19: the action is public on this resource type.
    PublicResource,
    /// R15: allowed by an emergency (break-glass) grant.
    BreakGlass,
    /// R1: no grant matches.
    NoMatchingGrant,
    /// R1: the principal is not in the snapshot (or none was given).
    UnknownPrincipal,
    /// R1: the resource type is not in the snapshot.
    UnknownResourceType,
    /// R1: the action is not defined for the resource type.
    UnknownAction,
    /// R6: revoked since the snapshot was built.
    PrincipalRevoked,
    /// R6: the account is terminated.
    AccountTerminated,
    /// R6: the account is disabled.
    AccountDisabled,
    /// R6: the account is locked.
    AccountLocked,
    /// R7: no activity for longer than the dormancy cut-off.
    AccountDormant,
    /// R9: the session has been idle too long (or reports no activity).
    SessionIdle,
    /// R9: the authentication is older than the maximum age (or its time is missing).
    SessionExpired,
    /// R4: shared accounts never reach sensitive resources.
    SharedAccountSensitive,
    /// R18: the session's network is not allowed for this resource type.
    NetworkNotAllowed,
    /// R8: a second factor is required.
    MfaRequired,
    /// R14: an explicit deny rule matches.
    ExplicitDeny,
    /// R16: the principal may not act as the requested account.
    ImpersonationNotAllowed,
    /// R15: only an emergency grant matches and no emergency reason was stated.
    BreakGlassReasonRequired,
    /// R11: the matching grant is not yet valid.
    GrantNotYetValid,
    /// R11: the matching grant has expired.
    GrantExpired,
    /// R7: the matching non-standard grant lapsed unused.
    GrantLapsed,
    /// R10: the role is privileged and the session is not elevated into it.
    ElevationRequired,
    /// R10: the elevation into the role is older than allowed.
    ElevationExpired,
    /// R13: the action needs a distinct, authorized co-signer.
    DualControlRequired,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 26] = {
        use Reason::*;
        [
            Granted,
            PublicResource,
            BreakGlass,
            NoMatchingGrant,
            UnknownPrincipal,
            UnknownResourceType,
            UnknownAction,
            PrincipalRevoked,
            AccountTerminated,
            AccountDisabled,
            AccountLocked,
            AccountDormant,
            SessionIdle,
            SessionExpired,
            SharedAccountSensitive,
            NetworkNotAllowed,
            MfaRequired,
            ExplicitDeny,
            ImpersonationNotAllowed,
            BreakGlassReasonRequired,
            GrantNotYetValid,
            GrantExpired,
            GrantLapsed,
            ElevationRequired,
            ElevationExpired,
            DualControlRequired,
        ]
    };

    /// The requirement id this reason enforces (`R1`..`R19`).
    pub fn rule_id(self) -> &'static str {
        use Reason::*;
        match self {
            Granted => "R2",
            PublicResource => "R19",
            BreakGlass | BreakGlassReasonRequired => "R15",
            NoMatchingGrant | UnknownPrincipal | UnknownResourceType | UnknownAction => "R1",
            PrincipalRevoked | AccountTerminated | AccountDisabled | AccountLocked => "R6",
            AccountDormant | GrantLapsed => "R7",
            SessionIdle | SessionExpired => "R9",
            SharedAccountSensitive => "R4",
            NetworkNotAllowed => "R18",
            MfaRequired => "R8",
            ExplicitDeny => "R14",
            ImpersonationNotAllowed => "R16",
            GrantNotYetValid | GrantExpired => "R11",
            ElevationRequired | ElevationExpired => "R10",
            DualControlRequired => "R13",
        }
    }

    /// The snake_case name used in files, logs and the API.
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            Granted => "granted",
            PublicResource => "public_resource",
            BreakGlass => "break_glass",
            NoMatchingGrant => "no_matching_grant",
            UnknownPrincipal => "unknown_principal",
            UnknownResourceType => "unknown_resource_type",
            UnknownAction => "unknown_action",
            PrincipalRevoked => "principal_revoked",
            AccountTerminated => "account_terminated",
            AccountDisabled => "account_disabled",
            AccountLocked => "account_locked",
            AccountDormant => "account_dormant",
            SessionIdle => "session_idle",
            SessionExpired => "session_expired",
            SharedAccountSensitive => "shared_account_sensitive",
            NetworkNotAllowed => "network_not_allowed",
            MfaRequired => "mfa_required",
            ExplicitDeny => "explicit_deny",
            ImpersonationNotAllowed => "impersonation_not_allowed",
            BreakGlassReasonRequired => "break_glass_reason_required",
            GrantNotYetValid => "grant_not_yet_valid",
            GrantExpired => "grant_expired",
            GrantLapsed => "grant_lapsed",
            ElevationRequired => "elevation_required",
            ElevationExpired => "elevation_expired",
            DualControlRequired => "dual_control_required",
        }
    }

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
