//! The compiled evaluator: `check`, `batch_check`, `check_each` and `explain` on a [`Snapshot`].
//! Follows the order of steps documented in [`crate::reference`].

use crate::bundle::{AccountStatus, Scope};
use crate::decision::{Decision, Effect, Flags, Reason, RuleRef};
use crate::overlay::{Overlay, TemporaryGrant};
use crate::principals::PrincipalRef;
use crate::request::{Request, Resource, Session};
use crate::snapshot::{ANY_TENANT, CGrant, CRole, CScope, CType, Snapshot, Window};
use crate::time::Timestamp;
use std::sync::Arc;

/// Records the steps of a decision when an explanation was asked for; free otherwise.
pub(crate) struct Tracer(Option<Vec<String>>);

impl Tracer {
    /// A tracer that records nothing.
    pub(crate) fn off() -> Self {
        Tracer(None)
    }

    pub(crate) fn note(&mut self, step: impl FnOnce() -> String) {
        if let Some(steps) = &mut self.0 {
            steps.push(step());
        }
    }
}

/// Who is acting, established by the steps before denies and grants.
pub(crate) struct Subject<'s> {
    pub actor: u32,
    pub effective: u32,
    pub effective_p: PrincipalRef<'s>,
    pub impersonating: bool,
    pub mfa: bool,
}

/// The outcome of the steps that do not depend on the resource's id or tenant.
pub(crate) enum Prelude<'s> {
    /// R19: a public action; only deny rules remain.
    Public(Option<u32>),
    /// A known, usable principal in an acceptable session.
    Principal(Subject<'s>),
}

/// Conditions of one grant, bundle or overlay, for the staged checks.
pub(crate) struct GrantView<'a> {
    pub role: &'a CRole,
    pub window: Window,
    pub dual: bool,
    /// R10: elevation into the role is needed (a privileged role or a privileged action).
    pub privileged: bool,
}

/// Best allow and most advanced deny seen among candidate grants.
#[derive(Default)]
struct Verdict {
    allow: Option<(bool, u64, RuleRef)>,
    deny: Option<(u8, u64, Reason, RuleRef)>,
}

impl Verdict {
    fn offer(&mut self, outcome: Result<(), Reason>, break_glass: bool, order: u64, rule: impl FnOnce() -> RuleRef) {
        match outcome {
            Ok(()) => {
                if self
                    .allow
                    .as_ref()
                    .is_none_or(|(bg, o, _)| (break_glass, order) < (*bg, *o))
                {
                    self.allow = Some((break_glass, order, rule()));
                }
            }
            Err(reason) => {
                let rank = reason.grant_stage_rank();
                if self
                    .deny
                    .as_ref()
                    .is_none_or(|(r, o, _, _)| rank > *r || (rank == *r && order < *o))
                {
                    self.deny = Some((rank, order, reason, rule()));
                }
            }
        }
    }
}

impl Snapshot {
    /// Decides one request. Unknown names deny (R1); nothing here can fail open.
    ///
    /// ```
    /// use portcullis_policy::{compile, parse_bundle, Format, Overlay, Request, Resource, Reason};
    /// let bundle = parse_bundle(br#"
    /// resource_types: [{name: note, actions: [read]}]
    /// roles: [{name: reader, permissions: {note: [read]}}]
    /// principals: [{id: ann}]
    /// grants: [{principal: ann, role: reader, scope: {tenant: acme}}]
    /// "#, Format::Yaml).unwrap();
    /// let snapshot = compile(&bundle, 1).unwrap();
    /// let mut req = Request { principal: "ann".into(), action: "read".into(),
    ///     resource: Resource { resource_type: "note".into(), id: "n1".into(),
    ///     tenant: Some("acme".into()), ..Default::default() }, ..Default::default() };
    /// assert!(snapshot.check(&req, Overlay::empty()).is_allowed());
    /// req.resource.tenant = Some("globex".into());
    /// assert_eq!(snapshot.check(&req, Overlay::empty()).reason, Reason::NoMatchingGrant);
    /// ```
    pub fn check(&self, request: &Request, overlay: &Overlay) -> Decision {
        self.decide(request, overlay, &mut Tracer::off())
    }

    /// Decides many requests against this one snapshot.
    pub fn batch_check(&self, requests: &[Request], overlay: &Overlay) -> Vec<Decision> {
        requests.iter().map(|r| self.check(r, overlay)).collect()
    }

    /// Decides each action on each resource for one principal and session, resolving the
    /// principal once: the decisions [`Snapshot::check`] gives on the single requests.
    /// `request` carries the principal, session and time; its resource and action are set
    /// to each item's in turn, and `decided` sees the request with its decision.
    pub fn check_each<A>(
        &self,
        request: &mut Request,
        items: impl IntoIterator<Item = (Resource, A)>,
        overlay: &Overlay,
        mut decided: impl FnMut(&Request, Decision),
    ) where
        A: IntoIterator<Item = String>,
    {
        let actor = self.principal(&request.principal);
        for (resource, actions) in items {
            request.resource = resource;
            for action in actions {
                request.action = action;
                decided(request, self.decide_as(request, actor, overlay, &mut Tracer::off()));
            }
        }
    }

    /// [`Snapshot::check`] with the trace of every step considered.
    pub fn explain(&self, request: &Request, overlay: &Overlay) -> Decision {
        let mut tracer = Tracer(Some(Vec::new()));
        let mut decision = self.decide(request, overlay, &mut tracer);
        decision.trace = tracer.0;
        decision
    }

    fn decide(&self, req: &Request, overlay: &Overlay, tracer: &mut Tracer) -> Decision {
        self.decide_as(req, self.principal(&req.principal), overlay, tracer)
    }

    /// `decide` with `req.principal` already looked up as `actor`.
    fn decide_as<'s>(
        &'s self,
        req: &Request,
        actor: Option<PrincipalRef<'s>>,
        overlay: &Overlay,
        tracer: &mut Tracer,
    ) -> Decision {
        let mut flags = Flags::default();
        let now = req.at.unwrap_or_else(Timestamp::now);
        let outcome = self.outcome(req, actor, overlay, now, &mut flags, tracer);
        let (effect, (reason, rule)) = match outcome {
            Ok(allow) => (Effect::Allow, allow),
            Err(deny) => (Effect::Deny, deny),
        };
        flags.break_glass = reason == Reason::BreakGlass;
        tracer.note(|| format!("decision: {effect} because {reason}"));
        Decision {
            effect,
            reason,
            rule,
            version: self.version,
            flags,
            trace: None,
        }
    }

    fn outcome<'s>(
        &'s self,
        req: &Request,
        actor: Option<PrincipalRef<'s>>,
        overlay: &Overlay,
        now: Timestamp,
        flags: &mut Flags,
        tracer: &mut Tracer,
    ) -> Result<(Reason, Option<RuleRef>), (Reason, Option<RuleRef>)> {
        let (type_key, ctype, bit) = self
            .resolve(&req.resource.resource_type, &req.action, tracer)
            .map_err(|r| (r, None))?;
        let subject = match self.prelude(
            &req.principal,
            actor,
            ctype,
            bit,
            &req.session,
            overlay,
            now,
            flags,
            tracer,
        ) {
            Err(reason) => return Err((reason, None)),
            Ok(Prelude::Public(principal)) => {
                if let Some(d) = self.first_deny(type_key, bit, &[principal], &req.resource) {
                    tracer.note(|| format!("R14: deny rule `{}` matches", self.rule_name(&RuleRef::Deny(d))));
                    return Err((Reason::ExplicitDeny, Some(RuleRef::Deny(d))));
                }
                return Ok((Reason::PublicResource, None));
            }
            Ok(Prelude::Principal(s)) => s,
        };
        let subjects = [Some(subject.effective), subject.impersonating.then_some(subject.actor)];
        if let Some(d) = self.first_deny(type_key, bit, &subjects, &req.resource) {
            tracer.note(|| format!("R14: deny rule `{}` matches", self.rule_name(&RuleRef::Deny(d))));
            return Err((Reason::ExplicitDeny, Some(RuleRef::Deny(d))));
        }
        tracer.note(|| "R14: no deny rule matches".to_owned());

        let tenant = req.resource.tenant.as_deref().and_then(|t| self.tenants.key(t));
        let res = || ctype.ids.key(&req.resource.id);
        let owned = owner_of(ctype, &req.resource) == Some(subject.effective_p.id);
        let mut verdict = Verdict::default();
        let mut co_signer: Option<Result<(), CoSignerProblem>> = None;
        for e in subject.effective_p.entries_for(type_key) {
            if e.actions & bit == 0 || !(e.break_glass || self.scope_covers(e.scope, tenant, res, owned)) {
                continue;
            }
            if e.plain {
                tracer.note(|| format!("R2: grant `{}` allows", self.rule_name(&RuleRef::Grant(e.grant))));
                return Ok((Reason::Granted, Some(RuleRef::Grant(e.grant))));
            }
            let outcome = settle(
                self.grant_view(e.grant, type_key, bit)
                    .and_then(|view| self.stages(&view, e.break_glass, &req.session, &subject, now)),
                &mut co_signer,
                || self.co_signer_ok(req, &subject, type_key, bit, ctype, overlay, now),
            );
            tracer.note(|| {
                format!(
                    "grant `{}`: {}",
                    self.rule_name(&RuleRef::Grant(e.grant)),
                    describe(outcome, co_signer)
                )
            });
            if outcome.is_ok() && !e.break_glass {
                return Ok((Reason::Granted, Some(RuleRef::Grant(e.grant))));
            }
            verdict.offer(outcome, e.break_glass, u64::from(e.grant), || RuleRef::Grant(e.grant));
        }
        let base = self.grants.len() as u64;
        for (i, t) in overlay.temporary_for(subject.effective_p.id).iter().enumerate() {
            let Some((view, role_bg)) = self.temporary_view(t, type_key, bit) else {
                continue;
            };
            if !(role_bg || t.scope.covers(&req.resource, owned)) {
                continue;
            }
            let outcome = settle(
                self.stages(&view, role_bg, &req.session, &subject, now),
                &mut co_signer,
                || self.co_signer_ok(req, &subject, type_key, bit, ctype, overlay, now),
            );
            tracer.note(|| format!("temporary grant `{}`: {}", t.id, describe(outcome, co_signer)));
            verdict.offer(outcome, role_bg, base + i as u64, || {
                RuleRef::Temporary(Arc::from(t.id.as_str()))
            });
        }
        match verdict {
            Verdict {
                allow: Some((bg, _, rule)),
                ..
            } => Ok((if bg { Reason::BreakGlass } else { Reason::Granted }, Some(rule))),
            Verdict {
                deny: Some((_, _, reason, rule)),
                ..
            } => Err((reason, Some(rule))),
            _ => {
                tracer.note(|| "R1: no grant covers this resource and action".to_owned());
                Err((Reason::NoMatchingGrant, None))
            }
        }
    }

    /// R1: the resource type and action must exist.
    pub(crate) fn resolve(
        &self,
        type_name: &str,
        action: &str,
        tracer: &mut Tracer,
    ) -> Result<(u16, &CType, u64), Reason> {
        let Some((key, ctype)) = self
            .type_keys
            .get(type_name)
            .and_then(|&k| Some((k, self.types.get(usize::from(k))?)))
        else {
            tracer.note(|| format!("R1: resource type `{type_name}` is not defined"));
            return Err(Reason::UnknownResourceType);
        };
        let Some(bit) = ctype.action_bit(action) else {
            tracer.note(|| format!("R1: action `{action}` is not defined on `{type_name}`"));
            return Err(Reason::UnknownAction);
        };
        Ok((key, ctype, bit))
    }

    /// Steps 2 to 6 of the reference order: everything before deny rules and grants.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prelude<'s>(
        &'s self,
        principal: &str,
        actor: Option<PrincipalRef<'s>>,
        ctype: &CType,
        bit: u64,
        sess: &Session,
        overlay: &Overlay,
        now: Timestamp,
        flags: &mut Flags,
        tracer: &mut Tracer,
    ) -> Result<Prelude<'s>, Reason> {
        if ctype.public & bit != 0 {
            tracer.note(|| "R19: the action is public on this type".to_owned());
            return Ok(Prelude::Public(actor.map(|p| p.key)));
        }
        let Some(actor_p) = actor else {
            tracer.note(|| format!("R1: principal `{principal}` is not in the snapshot"));
            return Err(Reason::UnknownPrincipal);
        };
        self.account(&actor_p, overlay, now, tracer)?;
        let target = match &sess.acting_as {
            None => None,
            Some(id) => {
                let Some(tp) = self.principal(id) else {
                    tracer.note(|| format!("R1: impersonated principal `{id}` is not in the snapshot"));
                    return Err(Reason::UnknownPrincipal);
                };
                self.account(&tp, overlay, now, tracer)?;
                Some(tp)
            }
        };
        let s = &self.settings;
        if let Some(idle) = s.idle_timeout
            && sess.last_activity.is_none_or(|t| now.exceeds(t, idle))
        {
            tracer.note(|| format!("R9: session idle for more than {idle} (or no activity reported)"));
            return Err(Reason::SessionIdle);
        }
        if let Some(max) = s.max_session_age
            && sess.authenticated_at.is_none_or(|t| now.exceeds(t, max))
        {
            tracer.note(|| format!("R9: authentication older than {max} (or its time is missing)"));
            return Err(Reason::SessionExpired);
        }
        let mfa = sess.has_second_factor(s.sms_acceptable);
        if let Some(tp) = target {
            if !self.may_impersonate(&actor_p, &tp, overlay, now) {
                tracer.note(|| format!("R16: `{principal}` holds no impersonation grant covering `{}`", tp.id));
                return Err(Reason::ImpersonationNotAllowed);
            }
            if !mfa {
                tracer.note(|| "R16/R8: impersonation needs a second factor".to_owned());
                return Err(Reason::MfaRequired);
            }
            flags.impersonated = true;
            tracer.note(|| format!("R16: `{principal}` acts as `{}`", tp.id));
        }
        let effective_p = target.unwrap_or(actor_p);
        if effective_p.shared && ctype.sensitive {
            tracer.note(|| "R4: shared accounts never reach sensitive resources".to_owned());
            return Err(Reason::SharedAccountSensitive);
        }
        if !ctype.networks.is_empty()
            && !sess
                .network
                .as_deref()
                .is_some_and(|n| ctype.networks.iter().any(|x| **x == *n))
        {
            tracer.note(|| match &sess.network {
                Some(n) => format!("R18: network `{n}` is not allowed for `{}`", ctype.name),
                None => format!("R18: `{}` needs a known network and the session names none", ctype.name),
            });
            return Err(Reason::NetworkNotAllowed);
        }
        if ctype.critical & bit != 0 && !mfa {
            tracer.note(|| format!("R8: `{}` is critical and the session has no second factor", ctype.name));
            return Err(Reason::MfaRequired);
        }
        tracer.note(|| "account, session, network and MFA checks pass".to_owned());
        Ok(Prelude::Principal(Subject {
            actor: actor_p.key,
            effective: effective_p.key,
            effective_p,
            impersonating: target.is_some(),
            mfa,
        }))
    }

    /// R6, R7: whether an account may act at all.
    pub(crate) fn account(
        &self,
        p: &PrincipalRef<'_>,
        overlay: &Overlay,
        now: Timestamp,
        tracer: &mut Tracer,
    ) -> Result<(), Reason> {
        let problem = if overlay.is_revoked(p.id) {
            Some(Reason::PrincipalRevoked)
        } else {
            match p.status {
                AccountStatus::Terminated => Some(Reason::AccountTerminated),
                AccountStatus::Disabled => Some(Reason::AccountDisabled),
                AccountStatus::Locked => Some(Reason::AccountLocked),
                AccountStatus::Active => p
                    .dormancy
                    .filter(|(last, cut)| overlay.is_dormant(p.id, *last, *cut, now))
                    .map(|_| Reason::AccountDormant),
            }
        };
        match problem {
            Some(reason) => {
                tracer.note(|| format!("account `{}`: {reason}", p.id));
                Err(reason)
            }
            None => Ok(()),
        }
    }

    /// R16: an impersonation grant of `actor`, usable now, whose scope covers the target's tenant.
    fn may_impersonate(
        &self,
        actor: &PrincipalRef<'_>,
        target: &PrincipalRef<'_>,
        overlay: &Overlay,
        now: Timestamp,
    ) -> bool {
        let target_tenant = self.principals.tenant(target.key);
        let from_bundle = self.impersonators.get(&actor.key).is_some_and(|grants| {
            grants.iter().filter_map(|&g| self.grants.get(g as usize)).any(|g| {
                self.grant_usable(g, now)
                    && match g.scope {
                        CScope::All => true,
                        CScope::Tenant(t) => target_tenant.and_then(|n| self.tenants.key(n)) == Some(t),
                        CScope::Resources(_) | CScope::Own(_) => false,
                    }
            })
        });
        from_bundle
            || overlay.temporary_for(actor.id).iter().any(|t| {
                self.role_keys
                    .get(t.role.as_str())
                    .and_then(|&r| self.roles.get(r as usize))
                    .is_some_and(|r| r.impersonation)
                    && temporary_window(t).usable(&self.settings, now).is_ok()
                    && match &t.scope {
                        Scope::All => true,
                        Scope::Tenant(x) => target_tenant == Some(&**x),
                        Scope::Resources { .. } | Scope::Own { .. } => false,
                    }
            })
    }

    /// Whether a compiled scope reaches a resource of tenant key `tenant`, `owned` by the
    /// principal whose grant this is. `res` gives the resource's id key and is called only
    /// for a resource-list scope (most scopes never need the id parsed or hashed).
    pub(crate) fn scope_covers(
        &self,
        scope: CScope,
        tenant: Option<u32>,
        res: impl FnOnce() -> Option<u32>,
        owned: bool,
    ) -> bool {
        match scope {
            CScope::All => true,
            CScope::Tenant(t) => tenant == Some(t),
            CScope::Own(t) => owned && (t == ANY_TENANT || tenant == Some(t)),
            CScope::Resources(s) => {
                res().is_some_and(|r| self.resource_sets.get(s as usize).is_some_and(|set| set.contains(r)))
            }
        }
    }

    /// A bundle grant's conditions; `InternalError` when the snapshot contradicts itself.
    pub(crate) fn grant_view(&self, grant: u32, type_key: u16, bit: u64) -> Result<GrantView<'_>, Reason> {
        let g: &CGrant = self.grants.get(grant as usize).ok_or(Reason::InternalError)?;
        let role = self.roles.get(g.role as usize).ok_or(Reason::InternalError)?;
        Ok(GrantView {
            role,
            window: self.window(g)?,
            dual: role.masks(type_key).1 & bit != 0,
            privileged: self.privileged(role, type_key, bit),
        })
    }

    /// An overlay grant's conditions, if its role exists and allows the action on the type.
    pub(crate) fn temporary_view(&self, t: &TemporaryGrant, type_key: u16, bit: u64) -> Option<(GrantView<'_>, bool)> {
        let role = self.roles.get(*self.role_keys.get(t.role.as_str())? as usize)?;
        let (allowed, dual) = role.masks(type_key);
        if allowed & bit == 0 {
            return None;
        }
        let view = GrantView {
            role,
            window: temporary_window(t),
            dual: dual & bit != 0,
            privileged: self.privileged(role, type_key, bit),
        };
        Some((view, role.break_glass))
    }

    /// R10: whether using `role` for action `bit` on a type needs elevation into it.
    fn privileged(&self, role: &CRole, type_key: u16, bit: u64) -> bool {
        role.privileged
            || self
                .types
                .get(usize::from(type_key))
                .is_none_or(|t| t.privileged & bit != 0)
    }

    /// The staged grant checks (R15, R11, R7, R8, R10). `Ok(true)` means a co-signer is still needed (R13).
    pub(crate) fn stages(
        &self,
        g: &GrantView<'_>,
        break_glass: bool,
        sess: &Session,
        subject: &Subject<'_>,
        now: Timestamp,
    ) -> Result<bool, Reason> {
        if break_glass && (subject.impersonating || sess.break_glass().is_none()) {
            return Err(Reason::BreakGlassReasonRequired);
        }
        g.window.usable(&self.settings, now)?;
        if g.role.requires_mfa && !subject.mfa {
            return Err(Reason::MfaRequired);
        }
        if g.privileged {
            if sess.elevated_role.as_deref() != Some(&*g.role.name) {
                return Err(Reason::ElevationRequired);
            }
            if let Some(max) = self.settings.elevation_max_age
                && sess.elevated_at.is_none_or(|t| now.exceeds(t, max))
            {
                return Err(Reason::ElevationExpired);
            }
        }
        Ok(g.dual)
    }

    /// R13: a distinct, usable co-signer holding an ordinary grant that covers the request.
    #[allow(clippy::too_many_arguments)]
    fn co_signer_ok(
        &self,
        req: &Request,
        subject: &Subject<'_>,
        type_key: u16,
        bit: u64,
        ctype: &CType,
        overlay: &Overlay,
        now: Timestamp,
    ) -> Result<(), CoSignerProblem> {
        let tenant = req.resource.tenant.as_deref().and_then(|t| self.tenants.key(t));
        let res = || ctype.ids.key(&req.resource.id);
        let owned = owner_of(ctype, &req.resource).is_some_and(|o| req.session.co_signer.as_deref() == Some(o));
        self.co_signer_covers(
            req.session.co_signer.as_deref(),
            subject,
            type_key,
            bit,
            overlay,
            now,
            |scope| match scope {
                Coverage::Compiled(s) => self.scope_covers(s, tenant, res, owned),
                Coverage::Overlay(s) => s.covers(&req.resource, owned),
            },
        )
    }

    /// Calls `covers` on each usable ordinary grant scope of a valid co-signer; `Ok` if any
    /// covers, otherwise which requirement of R13 the co-signer fails.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn co_signer_covers(
        &self,
        co_signer: Option<&str>,
        subject: &Subject<'_>,
        type_key: u16,
        bit: u64,
        overlay: &Overlay,
        now: Timestamp,
        mut covers: impl FnMut(Coverage<'_>) -> bool,
    ) -> Result<(), CoSignerProblem> {
        let Some(name) = co_signer else {
            return Err(CoSignerProblem::Missing);
        };
        let Some(cp) = self.principal(name) else {
            return Err(CoSignerProblem::Unknown);
        };
        if cp.key == subject.actor || cp.key == subject.effective {
            return Err(CoSignerProblem::Requester);
        }
        self.account(&cp, overlay, now, &mut Tracer::off())
            .map_err(CoSignerProblem::Inactive)?;
        let mut any = false;
        for e in cp.entries_for(type_key) {
            if e.break_glass || e.actions & bit == 0 {
                continue;
            }
            let usable_now = self
                .grants
                .get(e.grant as usize)
                .is_some_and(|g| self.grant_usable(g, now));
            if usable_now && covers(Coverage::Compiled(e.scope)) {
                any = true;
            }
        }
        for t in overlay.temporary_for(cp.id) {
            if let Some((_, false)) = self.temporary_view(t, type_key, bit)
                && temporary_window(t).usable(&self.settings, now).is_ok()
                && covers(Coverage::Overlay(&t.scope))
            {
                any = true;
            }
        }
        if any {
            Ok(())
        } else {
            Err(CoSignerProblem::NotAuthorized)
        }
    }

    /// R14: the first deny rule on this type and action matching any subject (`None` = anonymous) and the resource.
    pub(crate) fn first_deny(&self, type_key: u16, bit: u64, subjects: &[Option<u32>], res: &Resource) -> Option<u32> {
        let list = self.denies_by_type.get(usize::from(type_key))?;
        list.iter()
            .filter(|td| td.actions & bit != 0)
            .map(|td| td.deny)
            .find(|&d| {
                self.denies.get(d as usize).is_some_and(|rule| {
                    self.deny_subject_matches(rule, subjects)
                        && (rule.tenants.is_empty() || res.tenant.as_deref().is_some_and(|t| rule.tenants.contains(t)))
                        && (rule.resources.is_empty() || rule.resources.contains(res.id.as_str()))
                        && rule
                            .when
                            .iter()
                            .all(|(k, v)| res.attributes.get(&**k).is_some_and(|x| **x == **v))
                })
            })
    }

    pub(crate) fn deny_subject_matches(&self, rule: &crate::snapshot::CDeny, subjects: &[Option<u32>]) -> bool {
        rule.everyone
            || subjects.iter().flatten().any(|&k| {
                rule.principals.contains(&k)
                    || rule
                        .groups
                        .iter()
                        .any(|g| self.principals.groups(k).binary_search(g).is_ok())
            })
    }
}

/// A co-signer grant's scope, compiled or from the overlay.
pub(crate) enum Coverage<'a> {
    Compiled(CScope),
    Overlay(&'a Scope),
}

/// The owner a resource of `ctype` names (its `owner_attribute`), if it names one.
pub(crate) fn owner_of<'r>(ctype: &CType, resource: &'r Resource) -> Option<&'r str> {
    resource.attributes.get(&*ctype.owner_attribute).map(String::as_str)
}

/// An overlay grant's validity: always an expiry, never a lapse.
pub(crate) fn temporary_window(t: &TemporaryGrant) -> Window {
    Window {
        not_before: t.not_before,
        expires: Some(t.expires),
        lapse_from: None,
    }
}

/// Why a co-signer does not satisfy dual control (R13); explanations name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoSignerProblem {
    /// The session names no co-signer.
    Missing,
    /// The co-signer is not in the snapshot.
    Unknown,
    /// The co-signer is the requester (or the account acted as).
    Requester,
    /// The co-signer's account may not act (revoked, terminated, dormant, ...).
    Inactive(Reason),
    /// The co-signer holds no usable ordinary grant covering the request.
    NotAuthorized,
}

impl std::fmt::Display for CoSignerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoSignerProblem::Missing => f.write_str("no co-signer was named"),
            CoSignerProblem::Unknown => f.write_str("the co-signer is not a known principal"),
            CoSignerProblem::Requester => f.write_str("the requester cannot co-sign their own action"),
            CoSignerProblem::Inactive(r) => write!(f, "the co-signer's account is not active: {r}"),
            CoSignerProblem::NotAuthorized => {
                f.write_str("the co-signer holds no usable grant allowing this action here")
            }
        }
    }
}

/// Completes the staged checks with the co-signer's verdict (R13), computed at most once per request.
fn settle(
    stages: Result<bool, Reason>,
    cached: &mut Option<Result<(), CoSignerProblem>>,
    co_signer_ok: impl FnOnce() -> Result<(), CoSignerProblem>,
) -> Result<(), Reason> {
    match stages {
        Ok(true) if cached.get_or_insert_with(co_signer_ok).is_err() => Err(Reason::DualControlRequired),
        Ok(_) => Ok(()),
        Err(r) => Err(r),
    }
}

/// A grant's outcome for the trace; a dual-control failure says what was wrong with the co-signer.
fn describe(outcome: Result<(), Reason>, co_signer: Option<Result<(), CoSignerProblem>>) -> String {
    match (outcome, co_signer) {
        (Ok(()), _) => "allows".to_owned(),
        (Err(r @ Reason::DualControlRequired), Some(Err(why))) => format!("does not apply: {r}: {why}"),
        (Err(r), _) => format!("does not apply: {r}"),
    }
}
