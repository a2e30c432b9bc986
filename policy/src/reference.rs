//! The reference evaluator: the decision procedure written as plainly as possible, reading
//! the bundle directly with no indexes. Slow on purpose; the compiled evaluator must agree
//! with it on every request (see `tests/differential.rs` and [`crate::selfcheck`]).
//!
//! The order of steps is the specification of a decision:
//! 1. resource type and action must exist (R1);
//! 2. a public action allows unless an explicit deny matches (R19, R14);
//! 3. the principal must exist and its account be usable (R1, R6, R7); when impersonating,
//!    the same for the impersonated account;
//! 4. the session must be neither idle nor too old (R9);
//! 5. impersonation needs an impersonation grant covering the target's tenant and MFA (R16);
//! 6. shared accounts never reach sensitive types (R4); the network must be allowed (R18);
//!    critical actions (`critical`, `critical_actions`) need MFA (R8);
//! 7. the first matching explicit deny wins (R14);
//! 8. each grant of the effective principal that covers the resource is tried in stages:
//!    emergency reason (R15), validity (R11), lapse (R7), MFA (R8), elevation (R10: a
//!    privileged role, or a `privileged_actions` action), dual control (R13). An `own`
//!    scope covers resources whose owner attribute is the effective principal's id. Any grant passing allows (an ordinary grant before an emergency one,
//!    the first in the bundle among equals); otherwise the deny reports the stage that got
//!    furthest, so the outcome does not depend on grant order; no grant at all is R1.

use crate::bundle::{AccountStatus, Bundle, Principal, ResourceType, Role, Scope, WILDCARD};
use crate::decision::{Decision, Effect, Flags, Reason, RuleRef};
use crate::overlay::Overlay;
use crate::request::Request;
use crate::time::{Seconds, Timestamp};
use std::sync::Arc;

/// A grant of the bundle or the overlay, as the reference sees it.
struct AnyGrant<'a> {
    rule: RuleRef,
    /// Bundle grants first, then overlay grants: the tie-break order.
    order: usize,
    role: &'a Role,
    scope: &'a Scope,
    not_before: Option<Timestamp>,
    expires: Option<Timestamp>,
    non_standard: bool,
    last_used: Option<Timestamp>,
}

/// Decides `request` the slow, obvious way.
pub fn check(bundle: &Bundle, overlay: &Overlay, request: &Request, version: u64) -> Decision {
    let now = request.at.unwrap_or_else(Timestamp::now);
    let mut flags = Flags::default();
    match decide(bundle, overlay, request, now, &mut flags) {
        Ok((reason, rule)) => {
            flags.break_glass = reason == Reason::BreakGlass;
            Decision {
                effect: Effect::Allow,
                reason,
                rule,
                version,
                flags,
                trace: None,
            }
        }
        Err((reason, rule)) => Decision {
            effect: Effect::Deny,
            reason,
            rule,
            version,
            flags,
            trace: None,
        },
    }
}

type Outcome = Result<(Reason, Option<RuleRef>), (Reason, Option<RuleRef>)>;

fn decide(bundle: &Bundle, overlay: &Overlay, req: &Request, now: Timestamp, flags: &mut Flags) -> Outcome {
    let deny = |reason| Err((reason, None));
    let s = &bundle.settings;
    let Some(rtype) = bundle
        .resource_types
        .iter()
        .find(|t| t.name == req.resource.resource_type)
    else {
        return deny(Reason::UnknownResourceType);
    };
    if !rtype.actions.contains(&req.action) {
        return deny(Reason::UnknownAction);
    }
    let actor = find_principal(bundle, &req.principal);
    if rtype.public_actions.contains(&req.action) {
        let subjects: Vec<&Principal> = actor.into_iter().collect();
        if let Some(d) = first_deny(bundle, req, &subjects) {
            return Err((Reason::ExplicitDeny, Some(RuleRef::Deny(d))));
        }
        return Ok((Reason::PublicResource, None));
    }
    let Some(actor) = actor else {
        return deny(Reason::UnknownPrincipal);
    };
    if let Some(r) = account_problem(bundle, overlay, actor, now) {
        return deny(r);
    }
    let target = match &req.session.acting_as {
        None => None,
        Some(id) => match find_principal(bundle, id) {
            None => return deny(Reason::UnknownPrincipal),
            Some(t) => {
                if let Some(r) = account_problem(bundle, overlay, t, now) {
                    return deny(r);
                }
                Some(t)
            }
        },
    };
    let sess = &req.session;
    if let Some(idle) = s.idle_timeout
        && sess.last_activity.is_none_or(|t| now.exceeds(t, idle))
    {
        return deny(Reason::SessionIdle);
    }
    if let Some(max) = s.max_session_age
        && sess.authenticated_at.is_none_or(|t| now.exceeds(t, max))
    {
        return deny(Reason::SessionExpired);
    }
    let mfa = sess.has_second_factor(s.sms_acceptable);
    if let Some(target) = target {
        let covered = grants_of(bundle, overlay, &actor.id).any(|g| {
            g.role.impersonation
                && usable_at(bundle, &g, now).is_ok()
                && match g.scope {
                    Scope::All => true,
                    Scope::Tenant(t) => target.tenant.as_deref() == Some(&**t),
                    Scope::Resources { .. } | Scope::Own { .. } => false,
                }
        });
        if !covered {
            return deny(Reason::ImpersonationNotAllowed);
        }
        if !mfa {
            return deny(Reason::MfaRequired);
        }
        flags.impersonated = true;
    }
    let effective = target.unwrap_or(actor);
    if effective.shared && rtype.classification == crate::bundle::Classification::Sensitive {
        return deny(Reason::SharedAccountSensitive);
    }
    if !rtype.networks.is_empty() && !sess.network.as_ref().is_some_and(|n| rtype.networks.contains(n)) {
        return deny(Reason::NetworkNotAllowed);
    }
    if rtype.is_critical(&req.action) && !mfa {
        return deny(Reason::MfaRequired);
    }
    let mut subjects = vec![effective];
    if target.is_some() {
        subjects.push(actor);
    }
    if let Some(d) = first_deny(bundle, req, &subjects) {
        return Err((Reason::ExplicitDeny, Some(RuleRef::Deny(d))));
    }

    let owner = rtype.owner_of(&req.resource);
    let mut allowed: Option<(bool, usize, RuleRef)> = None;
    let mut denied: Option<(u8, usize, Reason, RuleRef)> = None;
    for g in grants_of(bundle, overlay, &effective.id) {
        if !role_allows(g.role, rtype, &req.action)
            || !(g.role.break_glass || g.scope.covers(&req.resource, owner == Some(effective.id.as_str())))
        {
            continue;
        }
        match stages(
            bundle,
            overlay,
            req,
            &g,
            rtype,
            actor,
            effective,
            now,
            mfa,
            target.is_some(),
        ) {
            Ok(()) => {
                let key = (g.role.break_glass, g.order);
                if allowed.as_ref().is_none_or(|(bg, o, _)| key < (*bg, *o)) {
                    allowed = Some((key.0, key.1, g.rule));
                }
            }
            Err(reason) => {
                let rank = reason.grant_stage_rank();
                let better = denied
                    .as_ref()
                    .is_none_or(|(r, o, _, _)| rank > *r || (rank == *r && g.order < *o));
                if better {
                    denied = Some((rank, g.order, reason, g.rule));
                }
            }
        }
    }
    match (allowed, denied) {
        (Some((bg, _, rule)), _) => Ok((if bg { Reason::BreakGlass } else { Reason::Granted }, Some(rule))),
        (None, Some((_, _, reason, rule))) => Err((reason, Some(rule))),
        (None, None) => deny(Reason::NoMatchingGrant),
    }
}

#[allow(clippy::too_many_arguments)]
fn stages(
    bundle: &Bundle,
    overlay: &Overlay,
    req: &Request,
    g: &AnyGrant<'_>,
    rtype: &ResourceType,
    actor: &Principal,
    effective: &Principal,
    now: Timestamp,
    mfa: bool,
    impersonating: bool,
) -> Result<(), Reason> {
    let s = &bundle.settings;
    if g.role.break_glass && (impersonating || req.session.break_glass().is_none()) {
        return Err(Reason::BreakGlassReasonRequired);
    }
    usable_at(bundle, g, now)?;
    if g.role.requires_mfa && !mfa {
        return Err(Reason::MfaRequired);
    }
    if g.role.privileged || rtype.is_privileged(&req.action) {
        if req.session.elevated_role.as_deref() != Some(g.role.name.as_str()) {
            return Err(Reason::ElevationRequired);
        }
        if let Some(max) = s.elevation_max_age
            && req.session.elevated_at.is_none_or(|t| now.exceeds(t, max))
        {
            return Err(Reason::ElevationExpired);
        }
    }
    if g.role.dual_control.contains(&req.action) {
        let ok = req.session.co_signer.as_deref().is_some_and(|c| {
            c != actor.id && c != effective.id && co_signer_authorized(bundle, overlay, req, rtype, c, now)
        });
        if !ok {
            return Err(Reason::DualControlRequired);
        }
    }
    Ok(())
}

/// R13: the co-signer is a usable account holding an ordinary grant that covers the request.
fn co_signer_authorized(
    bundle: &Bundle,
    overlay: &Overlay,
    req: &Request,
    rtype: &ResourceType,
    id: &str,
    now: Timestamp,
) -> bool {
    let Some(p) = find_principal(bundle, id) else {
        return false;
    };
    account_problem(bundle, overlay, p, now).is_none()
        && grants_of(bundle, overlay, id).any(|g| {
            !g.role.break_glass
                && role_allows(g.role, rtype, &req.action)
                && g.scope.covers(&req.resource, rtype.owner_of(&req.resource) == Some(id))
                && usable_at(bundle, &g, now).is_ok()
        })
}

/// R11 and R7: validity window and lapse of unused non-standard access.
fn usable_at(bundle: &Bundle, g: &AnyGrant<'_>, now: Timestamp) -> Result<(), Reason> {
    if g.not_before.is_some_and(|nb| now < nb) {
        return Err(Reason::GrantNotYetValid);
    }
    if g.expires.is_some_and(|ex| now >= ex) {
        return Err(Reason::GrantExpired);
    }
    if g.non_standard
        && let (Some(lapse), Some(since)) = (bundle.settings.unused_access_lapse, g.last_used.or(g.not_before))
        && now.exceeds(since, lapse)
    {
        return Err(Reason::GrantLapsed);
    }
    Ok(())
}

fn role_allows(role: &Role, rtype: &ResourceType, action: &str) -> bool {
    role.permissions
        .get(&rtype.name)
        .is_some_and(|a| a.iter().any(|x| x == action))
}

fn find_principal<'a>(bundle: &'a Bundle, id: &str) -> Option<&'a Principal> {
    if id.is_empty() {
        return None;
    }
    bundle.principals.iter().find(|p| p.id == id)
}

/// R6, R7: why an account cannot act at all, if it cannot.
fn account_problem(bundle: &Bundle, overlay: &Overlay, p: &Principal, now: Timestamp) -> Option<Reason> {
    if overlay.is_revoked(&p.id) {
        return Some(Reason::PrincipalRevoked);
    }
    match p.status {
        AccountStatus::Terminated => return Some(Reason::AccountTerminated),
        AccountStatus::Disabled => return Some(Reason::AccountDisabled),
        AccountStatus::Locked => return Some(Reason::AccountLocked),
        AccountStatus::Active => {}
    }
    let s = &bundle.settings;
    let cutoff: Option<Seconds> = if p.customer {
        s.customer_dormant_after.or(s.dormant_after)
    } else {
        s.dormant_after
    };
    match (cutoff, p.last_activity) {
        // The latest of the bundle's record and what the server observed (R7).
        (Some(c), Some(last)) if now.exceeds(last.max(overlay.activity.latest(&p.id).unwrap_or(last)), c) => {
            Some(Reason::AccountDormant)
        }
        _ => None,
    }
}

fn is_member(bundle: &Bundle, group: &str, principal: &str) -> bool {
    bundle
        .groups
        .iter()
        .any(|g| g.name == group && g.members.iter().any(|m| m == principal))
}

/// Every grant whose subject is `principal`, directly or through a group, then its overlay grants.
fn grants_of<'a>(
    bundle: &'a Bundle,
    overlay: &'a Overlay,
    principal: &'a str,
) -> impl Iterator<Item = AnyGrant<'a>> + 'a {
    let role = move |name: &str| bundle.roles.iter().find(|r| r.name == name);
    let from_bundle = bundle.grants.iter().enumerate().filter_map(move |(i, g)| {
        let mine = match (&g.principal, &g.group) {
            (Some(p), _) => **p == *principal,
            (None, Some(gr)) => is_member(bundle, gr, principal),
            (None, None) => false,
        };
        if !mine {
            return None;
        }
        Some(AnyGrant {
            rule: RuleRef::Grant(u32::try_from(i).ok()?),
            order: i,
            role: role(&g.role)?,
            scope: &g.scope,
            not_before: g.terms().not_before,
            expires: g.terms().expires,
            non_standard: g.terms().non_standard,
            last_used: g.terms().last_used,
        })
    });
    let base = bundle.grants.len();
    let from_overlay = overlay
        .temporary_for(principal)
        .iter()
        .enumerate()
        .filter_map(move |(i, t)| {
            Some(AnyGrant {
                rule: RuleRef::Temporary(Arc::from(t.id.as_str())),
                order: base + i,
                role: role(&t.role)?,
                scope: &t.scope,
                not_before: t.not_before,
                expires: Some(t.expires),
                non_standard: false,
                last_used: None,
            })
        });
    from_bundle.chain(from_overlay)
}

/// R14: the first deny rule matching the request for any of `subjects` (none: anonymous).
fn first_deny(bundle: &Bundle, req: &Request, subjects: &[&Principal]) -> Option<u32> {
    let res = &req.resource;
    let pos = bundle.denies.iter().position(|d| {
        let everyone = d.principals.is_empty() && d.groups.is_empty();
        let subject = everyone
            || subjects
                .iter()
                .any(|p| d.principals.contains(&p.id) || d.groups.iter().any(|g| is_member(bundle, g, &p.id)));
        subject
            && (d.resource_type == WILDCARD || d.resource_type == res.resource_type)
            && d.actions.iter().any(|a| a == WILDCARD || *a == req.action)
            && (d.tenants.is_empty() || res.tenant.as_ref().is_some_and(|t| d.tenants.contains(t)))
            && (d.resources.is_empty() || d.resources.contains(&res.id))
            && d.when.iter().all(|(k, v)| res.attributes.get(k) == Some(v))
    })?;
    u32::try_from(pos).ok()
}
