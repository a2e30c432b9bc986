//! Conversions between the wire types of `portcullis.v1` and the policy engine's types.

use portcullis_policy::filter::{IdSet, Rows};
use portcullis_policy::{
    AccessPath, Condition, Decision, Effect, Factor, Format, Reason, Request, Resource, RowFilter, RuleRef, Scope,
    Session, Snapshot, SqlParam, Timestamp,
};
use portcullis_proto::v1 as pb;
use tonic::Status;

/// A wire check request as an engine request. Missing parts are errors, unknown names are not.
pub fn request(r: pb::CheckRequest) -> Result<Request, Status> {
    let resource = r
        .resource
        .ok_or_else(|| Status::invalid_argument("`resource` is required"))?;
    Ok(Request {
        principal: r.principal,
        action: r.action,
        resource: self::resource(resource),
        session: session(r.session.unwrap_or_default())?,
        at: r.at.map(Timestamp),
    })
}

/// A wire resource as the engine's.
pub fn resource(r: pb::Resource) -> Resource {
    Resource {
        resource_type: r.r#type,
        id: r.id,
        tenant: r.tenant,
        attributes: r.attributes,
    }
}

/// A wire session as engine session facts.
pub fn session(s: pb::Session) -> Result<Session, Status> {
    let factors = s
        .factors
        .iter()
        .map(|f| Factor::from_name(f).ok_or_else(|| Status::invalid_argument(format!("unknown factor kind `{f}`"))))
        .collect::<Result<_, _>>()?;
    Ok(Session {
        authenticated_at: s.authenticated_at.map(Timestamp),
        last_activity: s.last_activity.map(Timestamp),
        factors,
        elevated_role: s.elevated_role,
        elevated_at: s.elevated_at.map(Timestamp),
        network: s.network,
        co_signer: s.co_signer,
        break_glass_reason: s.break_glass_reason,
        acting_as: s.acting_as,
    })
}

/// An engine decision on the wire; `overlay_seq` is the overlay change it saw.
pub fn decision(snapshot: &Snapshot, d: Decision, hide_forbidden: bool, overlay_seq: u64) -> pb::Decision {
    pb::Decision {
        effect: effect(d.effect) as i32,
        reason: d.reason.as_str().to_owned(),
        requirement: d.reason.rule_id().to_owned(),
        rule: d
            .rule
            .as_ref()
            .map(|r| snapshot.rule_name(r).into_owned())
            .unwrap_or_default(),
        version: d.version,
        break_glass: d.flags.break_glass,
        impersonated: d.flags.impersonated,
        not_found: hide_forbidden && d.effect == Effect::Deny,
        trace: d.trace.unwrap_or_default(),
        overlay_seq,
    }
}

/// The numeric wire code of a reason (`ReasonCode`), for compact decisions.
pub fn reason_code(r: Reason) -> pb::ReasonCode {
    use pb::ReasonCode as C;
    match r {
        Reason::Granted => C::Granted,
        Reason::PublicResource => C::PublicResource,
        Reason::BreakGlass => C::BreakGlass,
        Reason::NoMatchingGrant => C::NoMatchingGrant,
        Reason::UnknownPrincipal => C::UnknownPrincipal,
        Reason::UnknownResourceType => C::UnknownResourceType,
        Reason::UnknownAction => C::UnknownAction,
        Reason::PrincipalRevoked => C::PrincipalRevoked,
        Reason::AccountTerminated => C::AccountTerminated,
        Reason::AccountDisabled => C::AccountDisabled,
        Reason::AccountLocked => C::AccountLocked,
        Reason::AccountDormant => C::AccountDormant,
        Reason::SessionIdle => C::SessionIdle,
        Reason::SessionExpired => C::SessionExpired,
        Reason::SharedAccountSensitive => C::SharedAccountSensitive,
        Reason::NetworkNotAllowed => C::NetworkNotAllowed,
        Reason::MfaRequired => C::MfaRequired,
        Reason::ExplicitDeny => C::ExplicitDeny,
        Reason::ImpersonationNotAllowed => C::ImpersonationNotAllowed,
        Reason::BreakGlassReasonRequired => C::BreakGlassReasonRequired,
        Reason::GrantNotYetValid => C::GrantNotYetValid,
        Reason::GrantExpired => C::GrantExpired,
        Reason::GrantLapsed => C::GrantLapsed,
        Reason::ElevationRequired => C::ElevationRequired,
        Reason::ElevationExpired => C::ElevationExpired,
        Reason::DualControlRequired => C::DualControlRequired,
        Reason::InternalError => C::InternalError,
        Reason::AuditUnavailable => C::AuditUnavailable,
    }
}

/// The rules compact decisions name, each once: the `rules` of a CheckResources response.
#[derive(Debug, Default)]
pub struct RuleTable {
    /// FxHash: keys are the snapshot's own rule positions, looked up once per decision.
    index: rustc_hash::FxHashMap<RuleRef, u32>,
    names: Vec<String>,
}

impl RuleTable {
    /// 1 + the position of `rule`'s name (added on first use); 0 for no rule.
    fn number(&mut self, snapshot: &Snapshot, rule: Option<RuleRef>) -> u32 {
        let Some(rule) = rule else { return 0 };
        let next = u32::try_from(self.names.len() + 1).unwrap_or(u32::MAX);
        *self.index.entry(rule).or_insert_with_key(|r| {
            self.names.push(snapshot.rule_name(r).into_owned());
            next
        })
    }

    /// The names, in number order.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// An engine decision as a compact one, its rule numbered in `rules`.
pub fn compact(snapshot: &Snapshot, d: Decision, hide_forbidden: bool, rules: &mut RuleTable) -> pb::CompactDecision {
    pb::CompactDecision {
        effect: effect(d.effect) as i32,
        reason: reason_code(d.reason) as i32,
        rule: rules.number(snapshot, d.rule),
        break_glass: d.flags.break_glass,
        impersonated: d.flags.impersonated,
        not_found: hide_forbidden && d.effect == Effect::Deny,
    }
}

fn effect(e: Effect) -> pb::Effect {
    match e {
        Effect::Allow => pb::Effect::Allow,
        Effect::Deny => pb::Effect::Deny,
    }
}

/// A bundle format on the wire; unspecified means YAML.
pub fn format(f: i32) -> Result<Format, Status> {
    match pb::BundleFormat::try_from(f) {
        Ok(pb::BundleFormat::Json) => Ok(Format::Json),
        Ok(pb::BundleFormat::Yaml | pb::BundleFormat::Unspecified) => Ok(Format::Yaml),
        Err(_) => Err(Status::invalid_argument(format!("unknown bundle format {f}"))),
    }
}

/// A row filter on the wire, with its SQL rendering.
pub fn filter(snapshot: &Snapshot, f: &RowFilter) -> pb::FilterRowsResponse {
    let version = snapshot.version();
    let RowFilter::Rows { rows, exclusions, .. } = f else {
        let reason = match f {
            RowFilter::None { reason } => reason.as_str().to_owned(),
            RowFilter::Rows { .. } => String::new(),
        };
        return pb::FilterRowsResponse {
            kind: pb::filter_rows_response::Kind::None as i32,
            reason,
            sql: "FALSE".to_owned(),
            version,
            ..Default::default()
        };
    };
    let (tenant_ids, resource_ids) = f.id_lists(snapshot);
    let mut bitmap = Vec::new();
    if let Some(b) = f.resource_bitmap(snapshot)
        && b.serialize_into(&mut bitmap).is_err()
    {
        bitmap.clear();
    }
    let sql = f.to_sql(snapshot).unwrap_or_else(|| portcullis_policy::SqlPredicate {
        sql: "FALSE".into(),
        params: vec![],
    });
    pb::FilterRowsResponse {
        kind: if rows.all {
            pb::filter_rows_response::Kind::All
        } else {
            pb::filter_rows_response::Kind::Some
        } as i32,
        reason: String::new(),
        tenant_ids,
        resource_ids,
        resource_bitmap: bitmap,
        pairs: pairs(snapshot, f, rows),
        owned: owned(snapshot, f, rows),
        exclusions: exclusions
            .iter()
            .map(|x| pb::Exclusion {
                rule: x.rule.clone(),
                tenant_ids: x.tenants.iter().cloned().collect(),
                resource_ids: x.resources.iter().cloned().collect(),
                when: x.when.clone().into_iter().collect(),
            })
            .collect(),
        sql: sql.sql,
        sql_params: sql
            .params
            .into_iter()
            .map(|p| pb::SqlParam {
                value: Some(match p {
                    SqlParam::TextArray(values) => pb::sql_param::Value::TextArray(pb::StringList { values }),
                    SqlParam::Text(t) => pb::sql_param::Value::Text(t),
                }),
            })
            .collect(),
        version,
    }
}

fn pairs(snapshot: &Snapshot, f: &RowFilter, rows: &Rows) -> Vec<pb::PairTerm> {
    let names = |set: &IdSet, tenants: bool| f.names(snapshot, set, tenants);
    rows.pairs
        .iter()
        .map(|(t, r)| pb::PairTerm {
            tenant_ids: names(t, true),
            resource_ids: names(r, false),
        })
        .collect()
}

fn owned(snapshot: &Snapshot, f: &RowFilter, rows: &Rows) -> Vec<pb::OwnedTerm> {
    let list = |set: &Option<IdSet>, tenants: bool| {
        set.as_ref().map(|s| pb::StringList {
            values: f.names(snapshot, s, tenants),
        })
    };
    rows.owned
        .iter()
        .map(|o| pb::OwnedTerm {
            owner: o.owner.clone(),
            tenant_ids: list(&o.tenants, true),
            resource_ids: list(&o.resources, false),
        })
        .collect()
}

/// An access-review path on the wire.
pub fn access_path(p: AccessPath) -> pb::AccessPath {
    pb::AccessPath {
        principal: p.principal,
        account: p.account.as_str().to_owned(),
        grant: p.grant,
        role: p.role,
        via_group: p.via_group,
        resource_type: p.resource_type,
        actions: p.actions,
        scope: p.scope,
        conditions: p.conditions.into_iter().map(condition).collect(),
        blocked: p.blocked.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        needs: p.needs.iter().map(ToString::to_string).collect(),
    }
}

fn condition(c: Condition) -> String {
    match c {
        Condition::Mfa => "mfa".to_owned(),
        Condition::Elevation => "elevation".to_owned(),
        Condition::DualControl(actions) => format!("dual_control:{}", actions.join(",")),
        Condition::BreakGlassOnly => "break_glass_only".to_owned(),
        Condition::NotBefore(t) => format!("not_before:{}", t.0),
        Condition::Expires(t) => format!("expires:{}", t.0),
        Condition::Lapses(after) => format!("lapses:{after}"),
        Condition::DeniedBy(rule) => format!("denied_by:{rule}"),
    }
}

/// A temporary grant's scope from the wire: exactly one of all, tenant, resource ids.
pub fn scope(
    all: bool,
    tenant: Option<String>,
    resource_type: Option<String>,
    ids: Vec<String>,
) -> Result<Scope, Status> {
    match (all, tenant, resource_type) {
        (true, None, None) if ids.is_empty() => Ok(Scope::All),
        (false, Some(t), None) if ids.is_empty() && !t.is_empty() => Ok(Scope::Tenant(t.into())),
        (false, None, Some(rt)) if !ids.is_empty() => Ok(Scope::Resources {
            resource_type: rt.into(),
            ids: ids.into_iter().map(Into::into).collect(),
        }),
        _ => Err(Status::invalid_argument(
            "give exactly one scope: `all`, `tenant`, or `resource_type` with `resource_ids`",
        )),
    }
}

/// A scope as the admin API prints it.
pub fn scope_text(s: &Scope) -> String {
    match s {
        Scope::All => "all".to_owned(),
        Scope::Tenant(t) => format!("tenant:{t}"),
        Scope::Own { tenant: None } => "own".to_owned(),
        Scope::Own { tenant: Some(t) } => format!("own,tenant:{t}"),
        Scope::Resources { resource_type, ids } => format!("resources:{resource_type}:{}", ids.join(",")),
    }
}

/// A validation problem on the wire, with its path and line.
pub fn validation_problem(e: portcullis_policy::ValidationError) -> pb::ValidationProblem {
    pb::ValidationProblem {
        path: e.path,
        message: e.problem.to_string(),
        line: e.line.map_or(0, |l| u32::try_from(l).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_the_wire_code_of_its_name() {
        for r in Reason::ALL {
            let code = reason_code(*r);
            assert_eq!(
                code.as_str_name(),
                format!("REASON_CODE_{}", r.as_str().to_uppercase()),
                "{r:?}"
            );
        }
        let codes: std::collections::HashSet<i32> = Reason::ALL.iter().map(|r| reason_code(*r) as i32).collect();
        assert_eq!(codes.len(), Reason::ALL.len(), "two reasons share a code");
        assert!(!codes.contains(&(pb::ReasonCode::Unspecified as i32)));
    }
}
