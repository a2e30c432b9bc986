//! Conversions between the wire types of `portcullis.v1` and the policy engine's types.

use portcullis_policy::filter::{IdSet, Rows};
use portcullis_policy::{
    AccessPath, Condition, Decision, Effect, Factor, Format, Request, Resource, RowFilter, Scope, Session, Snapshot,
    SqlParam, Timestamp,
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
        resource: Resource {
            resource_type: resource.r#type,
            id: resource.id,
            tenant: resource.tenant,
            attributes: resource.attributes.into_iter().collect(),
        },
        session: session(r.session.unwrap_or_default())?,
        at: r.at.map(Timestamp),
    })
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
        effect: match d.effect {
            Effect::Allow => pb::Effect::Allow,
            Effect::Deny => pb::Effect::Deny,
        } as i32,
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
