//! AuthZEN 1.0 JSON bodies and their mapping onto the `portcullis.v1` messages. Every
//! field the mapping does not know is refused with its path, never ignored: a session fact
//! a caller thinks it sent must not silently go missing.

use portcullis_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request body that cannot be mapped: the field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// JSON path, e.g. `context.authenticated_at`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl BadField {
    fn new(field: impl Into<String>, message: impl Into<String>) -> BadField {
        BadField {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The subject: `id` is the principal.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Subject {
    /// Kind of subject (`user`, `service`); echoed in search results.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Principal id.
    #[serde(default)]
    pub id: String,
    /// Not used by Portcullis: the policy knows its principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// The action: `name` is the action.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Action {
    /// Action name, defined by the resource type.
    #[serde(default)]
    pub name: String,
    /// Not used by Portcullis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// The resource: `type`, `id`, and properties for its tenant, owner and attributes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Resource {
    /// Resource type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Resource id.
    #[serde(default)]
    pub id: String,
    /// `tenant`, and attributes (strings) such as the owner attribute the type names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// One access evaluation (also an item of `evaluations`, where each part is optional
/// and defaults to the top-level one).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation {
    /// Who.
    pub subject: Option<Subject>,
    /// Does what.
    pub action: Option<Action>,
    /// On what.
    pub resource: Option<Resource>,
    /// Session facts and request options.
    pub context: Option<Map<String, Value>>,
}

/// `options` of an evaluations request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

/// A batch: defaults at the top, items in `evaluations`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluations {
    /// Defaults for every item.
    #[serde(flatten)]
    pub defaults: Evaluation,
    /// The items, in order.
    #[serde(default)]
    pub evaluations: Vec<Evaluation>,
    /// How to combine them.
    #[serde(default)]
    pub options: Options,
}

/// How an evaluations batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every item, every result.
    ExecuteAll,
    /// Stop after the first deny (like `&&`).
    DenyOnFirstDeny,
    /// Stop after the first permit (like `||`).
    PermitOnFirstPermit,
}

impl Options {
    /// The semantic asked for; an unknown name is refused.
    pub fn semantic(&self) -> Result<Semantic, BadField> {
        match self.evaluations_semantic.as_deref() {
            None | Some("execute_all") => Ok(Semantic::ExecuteAll),
            Some("deny_on_first_deny") => Ok(Semantic::DenyOnFirstDeny),
            Some("permit_on_first_permit") => Ok(Semantic::PermitOnFirstPermit),
            Some(other) => Err(BadField::new(
                "options.evaluations_semantic",
                format!("`{other}` is not one of execute_all, deny_on_first_deny, permit_on_first_permit"),
            )),
        }
    }
}

/// A page request of the search APIs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageRequest {
    /// The `next_token` of the previous page.
    pub next_token: Option<String>,
    /// Most results on this page (default 100, at most 1,000).
    pub limit: Option<u32>,
}

/// A search request: an evaluation with one part left open, and a page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Search {
    /// The evaluation being searched.
    #[serde(flatten)]
    pub query: Evaluation,
    /// Which page.
    #[serde(default)]
    pub page: PageRequest,
}

/// A decision as AuthZEN returns it, with Portcullis's reason in `context`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Allow (`true`) or deny.
    pub decision: bool,
    /// `reason`, `requirement`, `rule`, `version`, `overlay_seq` and the markers.
    pub context: Map<String, Value>,
}

impl From<&pb::Decision> for Decision {
    fn from(d: &pb::Decision) -> Decision {
        let mut context = Map::new();
        context.insert("reason".into(), d.reason.clone().into());
        context.insert("requirement".into(), d.requirement.clone().into());
        if !d.rule.is_empty() {
            context.insert("rule".into(), d.rule.clone().into());
        }
        context.insert("version".into(), d.version.into());
        context.insert("overlay_seq".into(), d.overlay_seq.into());
        for (flag, on) in [
            ("break_glass", d.break_glass),
            ("impersonated", d.impersonated),
            ("not_found", d.not_found),
        ] {
            if on {
                context.insert(flag.into(), true.into());
            }
        }
        Decision {
            decision: d.effect == pb::Effect::Allow as i32,
            context,
        }
    }
}

/// `context` keys that are session facts, under the proto's `Session` field names.
pub const SESSION_KEYS: &[&str] = &[
    "authenticated_at",
    "last_activity",
    "factors",
    "elevated_role",
    "elevated_at",
    "network",
    "co_signer",
    "break_glass_reason",
    "acting_as",
];

/// `context` keys that are request options, under the proto's `CheckRequest` names.
pub const OPTION_KEYS: &[&str] = &["at", "min_version", "min_overlay_seq", "hide_forbidden"];

/// An evaluation with its defaults applied, as a `CheckRequest`; `at` names the item
/// (`evaluations[3]`) in errors.
pub fn check_request(e: &Evaluation, defaults: &Evaluation, at: &str) -> Result<pb::CheckRequest, BadField> {
    let path = |part: &str| {
        if at.is_empty() {
            part.to_owned()
        } else {
            format!("{at}.{part}")
        }
    };
    let subject = e.subject.as_ref().or(defaults.subject.as_ref());
    let action = e.action.as_ref().or(defaults.action.as_ref());
    let resource = e.resource.as_ref().or(defaults.resource.as_ref());
    let context = e.context.as_ref().or(defaults.context.as_ref());
    let subject = subject.ok_or_else(|| BadField::new(path("subject"), "is required"))?;
    let action = action.ok_or_else(|| BadField::new(path("action"), "is required"))?;
    let resource = resource.ok_or_else(|| BadField::new(path("resource"), "is required"))?;
    if action.name.is_empty() {
        return Err(BadField::new(path("action.name"), "is required"));
    }
    if resource.kind.is_empty() {
        return Err(BadField::new(path("resource.type"), "is required"));
    }
    let mut request = pb::CheckRequest {
        principal: subject.id.clone(),
        action: action.name.clone(),
        resource: Some(wire_resource(resource, &path("resource.properties"))?),
        ..Default::default()
    };
    if let Some(context) = context {
        apply_context(&mut request, context, &path("context"))?;
    }
    Ok(request)
}

/// The resource with `tenant` and string attributes from its properties.
pub fn wire_resource(r: &Resource, path: &str) -> Result<pb::Resource, BadField> {
    let mut out = pb::Resource {
        r#type: r.kind.clone(),
        id: r.id.clone(),
        ..Default::default()
    };
    for (k, v) in r.properties.iter().flatten() {
        let text = v
            .as_str()
            .ok_or_else(|| BadField::new(format!("{path}.{k}"), "must be a string"))?;
        if k == "tenant" {
            out.tenant = Some(text.to_owned());
        } else {
            out.attributes.insert(k.clone(), text.to_owned());
        }
    }
    Ok(out)
}

/// Session facts and options from `context` into `request`.
pub fn apply_context(request: &mut pb::CheckRequest, context: &Map<String, Value>, path: &str) -> Result<(), BadField> {
    let session = request.session.get_or_insert_with(Default::default);
    for (k, v) in context {
        let field = format!("{path}.{k}");
        let text = || {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| BadField::new(&field, "must be a string"))
        };
        match k.as_str() {
            "authenticated_at" => session.authenticated_at = Some(time(v, &field)?),
            "last_activity" => session.last_activity = Some(time(v, &field)?),
            "elevated_at" => session.elevated_at = Some(time(v, &field)?),
            "at" => request.at = Some(time(v, &field)?),
            "factors" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| BadField::new(&field, "must be a list of factor names"))?;
                session.factors = list
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        f.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| BadField::new(format!("{field}[{i}]"), "must be a string"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "elevated_role" => session.elevated_role = Some(text()?),
            "network" => session.network = Some(text()?),
            "co_signer" => session.co_signer = Some(text()?),
            "break_glass_reason" => session.break_glass_reason = Some(text()?),
            "acting_as" => session.acting_as = Some(text()?),
            "min_version" => request.min_version = count(v, &field)?,
            "min_overlay_seq" => request.min_overlay_seq = count(v, &field)?,
            "hide_forbidden" => {
                request.hide_forbidden = v
                    .as_bool()
                    .ok_or_else(|| BadField::new(&field, "must be true or false"))?
            }
            _ => {
                return Err(BadField::new(
                    field,
                    format!(
                        "unknown context field; session facts are {} and options {}",
                        SESSION_KEYS.join(", "),
                        OPTION_KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A time as Unix seconds or RFC 3339.
fn time(v: &Value, field: &str) -> Result<i64, BadField> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let text = v
        .as_str()
        .ok_or_else(|| BadField::new(field, "must be Unix seconds or an RFC 3339 time"))?;
    portcullis_policy::Timestamp::parse(text)
        .map(|t| t.0)
        .map_err(|e| BadField::new(field, format!("`{text}` is not a time: {e}")))
}

fn count(v: &Value, field: &str) -> Result<u64, BadField> {
    v.as_u64()
        .ok_or_else(|| BadField::new(field, "must be a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(json: Value) -> Evaluation {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn fields_map_onto_the_check_request_and_unknown_ones_are_refused() {
        let e = evaluation(serde_json::json!({
            "subject": {"type": "user", "id": "dr-ann"},
            "action": {"name": "read"},
            "resource": {"type": "patient_record", "id": "p-1", "properties": {"tenant": "north", "kind": "lab"}},
            "context": {"authenticated_at": "2026-11-23T09:00:00Z", "last_activity": 1795428000,
                        "factors": ["password", "totp"], "acting_as": "pat-ann"}
        }));
        let r = check_request(&e, &Evaluation::default(), "").unwrap();
        assert_eq!(r.principal, "dr-ann");
        let res = r.resource.unwrap();
        assert_eq!(
            (res.tenant.as_deref(), res.attributes.get("kind").map(String::as_str)),
            (Some("north"), Some("lab"))
        );
        let s = r.session.unwrap();
        assert_eq!(s.authenticated_at, Some(1_795_424_400));
        assert_eq!(s.last_activity, Some(1_795_428_000));
        assert_eq!(s.factors, vec!["password", "totp"]);
        assert_eq!(s.acting_as.as_deref(), Some("pat-ann"));

        let bad = evaluation(serde_json::json!({
            "subject": {"id": "a"}, "action": {"name": "read"}, "resource": {"type": "t"},
            "context": {"mfa": true}
        }));
        let err = check_request(&bad, &Evaluation::default(), "evaluations[2]").unwrap_err();
        assert_eq!(err.field, "evaluations[2].context.mfa");
        let bad_time = evaluation(serde_json::json!({
            "subject": {"id": "a"}, "action": {"name": "read"}, "resource": {"type": "t"},
            "context": {"at": "yesterday"}
        }));
        assert_eq!(
            check_request(&bad_time, &Evaluation::default(), "").unwrap_err().field,
            "context.at"
        );
        let missing = evaluation(serde_json::json!({"subject": {"id": "a"}, "resource": {"type": "t"}}));
        assert_eq!(
            check_request(&missing, &Evaluation::default(), "").unwrap_err().field,
            "action"
        );
    }
}
