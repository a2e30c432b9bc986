//! `portcullis check`: decide one request against a bundle file, optionally explained.

use crate::bundle_file::read_bundle;
use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_policy::{Decision, Factor, Overlay, Reason, Request, Resource, Session, Snapshot, Timestamp, compile};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// Bundle file to decide against; without it, the server of --server decides.
    #[arg(long)]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    remote: crate::client::Remote,
    /// A whole request as JSON (the policy-test `request` shape); replaces the flags below.
    #[arg(long)]
    request: Option<String>,
    /// Principal id (omit for an anonymous request).
    #[arg(long, default_value = "")]
    principal: String,
    /// Action.
    #[arg(long)]
    action: Option<String>,
    /// Resource type.
    #[arg(long = "type")]
    resource_type: Option<String>,
    /// Resource id.
    #[arg(long, default_value = "")]
    id: String,
    /// Several resource ids of --type and --tenant, decided in one call (CheckResources);
    /// --action may then list several actions, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["id", "request", "explain"])]
    ids: Vec<String>,
    /// Resource tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Resource attribute `key=value` (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    /// Authentication factor used (repeatable): password, passkey, hardware_token, device_certificate, totp, push, sms.
    #[arg(long = "factor", value_parser = parse_factor)]
    factors: Vec<Factor>,
    /// The session authenticated, was active and (with --elevated-role) elevated at the decision time.
    #[arg(long)]
    fresh: bool,
    /// When the session authenticated (RFC 3339).
    #[arg(long, value_parser = Timestamp::parse)]
    authenticated_at: Option<Timestamp>,
    /// Last activity of the session (RFC 3339).
    #[arg(long, value_parser = Timestamp::parse)]
    last_activity: Option<Timestamp>,
    /// Privileged role the session elevated into.
    #[arg(long)]
    elevated_role: Option<String>,
    /// When it elevated (RFC 3339).
    #[arg(long, value_parser = Timestamp::parse)]
    elevated_at: Option<Timestamp>,
    /// Network the request comes from.
    #[arg(long)]
    network: Option<String>,
    /// Co-signer for dual-control actions.
    #[arg(long)]
    co_signer: Option<String>,
    /// Emergency (break-glass) reason.
    #[arg(long)]
    break_glass: Option<String>,
    /// Principal to act as (impersonation).
    #[arg(long)]
    acting_as: Option<String>,
    /// Decision time (RFC 3339); default now.
    #[arg(long, value_parser = Timestamp::parse)]
    at: Option<Timestamp>,
    /// Print every step the evaluator considered.
    #[arg(long)]
    explain: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not key=value"))
}

fn parse_factor(s: &str) -> Result<Factor, String> {
    Factor::from_name(s).ok_or_else(|| format!("`{s}` is not a factor kind"))
}

impl CheckArgs {
    fn request(&self) -> Result<Request> {
        if let Some(json) = &self.request {
            return serde_json::from_str(json).context("--request is not a valid request");
        }
        let (Some(action), Some(resource_type)) = (&self.action, &self.resource_type) else {
            bail!("give --action and --type, or --request");
        };
        let at = self.at.unwrap_or_else(Timestamp::now);
        Ok(Request {
            principal: self.principal.clone(),
            action: action.clone(),
            resource: Resource {
                resource_type: resource_type.clone(),
                id: self.id.clone(),
                tenant: self.tenant.clone(),
                attributes: self.attributes.iter().cloned().collect(),
            },
            session: Session {
                authenticated_at: self.authenticated_at.or(self.fresh.then_some(at)),
                last_activity: self.last_activity.or(self.fresh.then_some(at)),
                factors: self.factors.clone(),
                elevated_role: self.elevated_role.clone(),
                elevated_at: self
                    .elevated_at
                    .or((self.fresh && self.elevated_role.is_some()).then_some(at)),
                network: self.network.clone(),
                co_signer: self.co_signer.clone(),
                break_glass_reason: self.break_glass.clone(),
                acting_as: self.acting_as.clone(),
            },
            at: Some(at),
        })
    }
}

/// Exit code 0 for allow, 1 for deny.
pub(super) fn run(args: CheckArgs) -> Result<ExitCode> {
    let request = args.request()?;
    if !args.ids.is_empty() {
        return run_each(&args, request);
    }
    let Some(bundle_path) = &args.bundle else {
        return run_remote(&args, request);
    };
    let bundle = read_bundle(bundle_path)?;
    let snapshot = compile(&bundle, 1).with_context(|| format!("`{}` does not compile", bundle_path.display()))?;
    let decision = if args.explain {
        snapshot.explain(&request, Overlay::empty())
    } else {
        snapshot.check(&request, Overlay::empty())
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&DecisionView::new(&snapshot, &decision))?
        );
    } else {
        print!("{}", render(&snapshot, &decision));
    }
    Ok(if decision.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A decision with its rule named, for printing.
#[derive(serde::Serialize)]
struct DecisionView<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    rule_id: Option<String>,
    requirement: &'static str,
}

impl<'a> DecisionView<'a> {
    fn new(snapshot: &Snapshot, decision: &'a Decision) -> Self {
        DecisionView {
            decision,
            rule_id: decision.rule.as_ref().map(|r| snapshot.rule_name(r).into_owned()),
            requirement: decision.reason.rule_id(),
        }
    }
}

fn render(snapshot: &Snapshot, d: &Decision) -> String {
    let mut out = format!("{} {}", if d.is_allowed() { "ALLOW" } else { "DENY" }, d.reason);
    if let Some(rule) = &d.rule {
        out.push_str(&format!(" by `{}`", snapshot.rule_name(rule)));
    }
    out.push_str(&format!(" [snapshot {}]", d.version));
    if d.flags.break_glass {
        out.push_str(" BREAK-GLASS");
    }
    if d.flags.impersonated {
        out.push_str(" IMPERSONATED");
    }
    out.push('\n');
    for step in d.trace.iter().flatten() {
        out.push_str(&format!("  - {step}\n"));
    }
    out
}

/// One decision of `--ids`, for printing.
#[derive(serde::Serialize)]
struct EachLine {
    id: String,
    action: String,
    effect: &'static str,
    reason: &'static str,
    requirement: &'static str,
    rule_id: String,
    break_glass: bool,
    impersonated: bool,
}

impl EachLine {
    fn new(id: &str, action: &str, allowed: bool, reason: Reason, rule: String, flags: (bool, bool)) -> EachLine {
        EachLine {
            id: id.to_owned(),
            action: action.to_owned(),
            effect: if allowed { "allow" } else { "deny" },
            reason: reason.as_str(),
            requirement: reason.rule_id(),
            rule_id: rule,
            break_glass: flags.0,
            impersonated: flags.1,
        }
    }
}

/// `--ids`: every action on every id, against the bundle (`Snapshot::check_each`) or the
/// server (CheckResources). Exit code 0 when all allow, 1 otherwise.
fn run_each(args: &CheckArgs, mut request: Request) -> Result<ExitCode> {
    let actions: Vec<String> = request.action.split(',').map(|a| a.trim().to_owned()).collect();
    let resource = std::mem::take(&mut request.resource);
    let items = || {
        args.ids.iter().map(|id| {
            (
                Resource {
                    id: id.clone(),
                    ..resource.clone()
                },
                actions.clone(),
            )
        })
    };
    let asked: Vec<(String, String)> = items()
        .flat_map(|(r, actions)| actions.into_iter().map(move |a| (r.id.clone(), a)))
        .collect();
    let lines: Vec<EachLine> = if let Some(bundle_path) = &args.bundle {
        let bundle = read_bundle(bundle_path)?;
        let snapshot = compile(&bundle, 1).with_context(|| format!("`{}` does not compile", bundle_path.display()))?;
        let mut lines = Vec::new();
        snapshot.check_each(&mut request, items(), Overlay::empty(), |req, d| {
            let rule = d
                .rule
                .as_ref()
                .map(|r| snapshot.rule_name(r).into_owned())
                .unwrap_or_default();
            let flags = (d.flags.break_glass, d.flags.impersonated);
            lines.push(EachLine::new(
                &req.resource.id,
                &req.action,
                d.is_allowed(),
                d.reason,
                rule,
                flags,
            ));
        });
        lines
    } else {
        use portcullis_proto::v1 as pb;
        let wire = wire_check(args, request);
        let msg = pb::CheckResourcesRequest {
            principal: wire.principal,
            session: wire.session,
            at: wire.at,
            items: items()
                .map(|(r, actions)| pb::ResourceActions {
                    resource: Some(wire_resource(r)),
                    actions,
                })
                .collect(),
            ..Default::default()
        };
        let resp = call_server(
            args,
            |mut client, req| async move { client.check_resources(req).await },
            msg,
        )?;
        resp.decisions
            .iter()
            .zip(&asked)
            .map(|(d, (id, action))| {
                let name = pb::ReasonCode::try_from(d.reason).map_or("", |c| c.as_str_name());
                let reason = Reason::ALL
                    .iter()
                    .copied()
                    .find(|r| name.strip_prefix("REASON_CODE_") == Some(&r.as_str().to_uppercase()))
                    .context("the server sent an unknown reason code")?;
                let rule = match d.rule {
                    0 => String::new(),
                    n => resp
                        .rules
                        .get(n as usize - 1)
                        .cloned()
                        .context("the server sent an unknown rule")?,
                };
                let allowed = d.effect == pb::Effect::Allow as i32;
                Ok(EachLine::new(
                    id,
                    action,
                    allowed,
                    reason,
                    rule,
                    (d.break_glass, d.impersonated),
                ))
            })
            .collect::<Result<_>>()?
    };
    if lines.len() != asked.len() {
        bail!("{} decisions for {} questions", lines.len(), asked.len());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else {
        for l in &lines {
            println!(
                "{} {} {} {} ({}){}",
                l.id,
                l.action,
                l.effect.to_uppercase(),
                l.reason,
                l.requirement,
                by_rule(&l.rule_id)
            );
        }
    }
    Ok(if lines.iter().all(|l| l.effect == "allow") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Asks the server (Check, or Explain with --explain).
fn run_remote(args: &CheckArgs, r: Request) -> Result<ExitCode> {
    use portcullis_proto::v1 as pb;
    let msg = wire_check(args, r);
    let explain = args.explain;
    let d = call_server(
        args,
        |mut client, req| async move {
            if explain {
                client.explain(req).await
            } else {
                client.check(req).await
            }
        },
        msg,
    )?;
    let d = d.decision.context("server sent no decision")?;
    let allowed = d.effect == pb::Effect::Allow as i32;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"effect": if allowed {"allow"} else {"deny"}, "reason": d.reason, "requirement": d.requirement,
                "rule_id": d.rule, "version": d.version, "break_glass": d.break_glass, "impersonated": d.impersonated, "trace": d.trace})
        );
    } else {
        println!(
            "{} {} ({}){} [snapshot {}]",
            if allowed { "ALLOW" } else { "DENY" },
            d.reason,
            d.requirement,
            by_rule(&d.rule),
            d.version
        );
        for step in &d.trace {
            println!("  - {step}");
        }
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The wire form of the request given on the command line.
fn wire_check(args: &CheckArgs, r: Request) -> portcullis_proto::v1::CheckRequest {
    use portcullis_proto::v1 as pb;
    pb::CheckRequest {
        principal: r.principal,
        action: r.action,
        resource: Some(wire_resource(r.resource)),
        session: Some(pb::Session {
            authenticated_at: r.session.authenticated_at.map(|t| t.0),
            last_activity: r.session.last_activity.map(|t| t.0),
            factors: r.session.factors.iter().map(|f| factor_name(*f).to_owned()).collect(),
            elevated_role: r.session.elevated_role,
            elevated_at: r.session.elevated_at.map(|t| t.0),
            network: r.session.network,
            co_signer: r.session.co_signer,
            break_glass_reason: r.session.break_glass_reason,
            acting_as: r.session.acting_as,
        }),
        // The server owns the clock: only a time the user gave is sent (a what-if).
        at: if args.request.is_some() { r.at } else { args.at }.map(|t| t.0),
        min_version: 0,
        min_overlay_seq: 0,
        hide_forbidden: false,
    }
}

/// An engine resource on the wire.
fn wire_resource(r: Resource) -> portcullis_proto::v1::Resource {
    portcullis_proto::v1::Resource {
        r#type: r.resource_type,
        id: r.id,
        tenant: r.tenant,
        attributes: r.attributes.into_iter().collect(),
    }
}

/// ` by `RULE`` after a decision line, or nothing when no rule decided.
fn by_rule(rule: &str) -> String {
    if rule.is_empty() {
        String::new()
    } else {
        format!(" by `{rule}`")
    }
}

type Client = portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient<tonic::transport::Channel>;

/// Sends `msg` with the command line's token through `rpc`, and returns the answer.
fn call_server<M, T, F>(args: &CheckArgs, rpc: impl FnOnce(Client, tonic::Request<M>) -> F, msg: M) -> Result<T>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = Client::new(args.remote.channel().await?);
        let resp = rpc(client, args.remote.request(msg)?).await;
        anyhow::Ok(
            resp.map_err(|s| anyhow::anyhow!("server refused ({:?}): {}", s.code(), s.message()))?
                .into_inner(),
        )
    })
}

fn factor_name(f: Factor) -> &'static str {
    match f {
        Factor::Password => "password",
        Factor::Passkey => "passkey",
        Factor::HardwareToken => "hardware_token",
        Factor::DeviceCertificate => "device_certificate",
        Factor::Totp => "totp",
        Factor::Push => "push",
        Factor::Sms => "sms",
    }
}
