//! Requests drawn from a bundle: one template per (grantee, role permission, scope), picked
//! with a Zipf skew so a few principals are hot, as in real traffic.

use anyhow::Context;
use portcullis_policy::{Bundle, Factor, Request, Resource, Scope, Session, Timestamp};
use portcullis_proto::v1 as pb;
use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

/// A request shape: who does what where.
#[derive(Debug, Clone)]
struct Template {
    principal: String,
    action: String,
    resource_type: String,
    tenant: Option<String>,
    id: String,
    elevated_role: Option<String>,
    network: Option<String>,
}

/// Request templates from a bundle, and the skew to draw them with.
#[derive(Debug)]
pub struct Workload {
    templates: Vec<Template>,
    zipf: Zipf<f64>,
    skew: f64,
    /// Share of requests sent to a tenant no one holds (deny traffic).
    pub deny_share: f64,
}

impl Workload {
    /// Builds templates from the bundle's grants (group grants expanded to members).
    pub fn from_bundle(bundle: &Bundle, skew: f64) -> anyhow::Result<Workload> {
        let mut templates = Vec::new();
        for g in &bundle.grants {
            let Some(role) = bundle.roles.iter().find(|r| *r.name == *g.role) else {
                continue;
            };
            if role.break_glass {
                continue;
            }
            let grantees: Vec<String> = match (&g.principal, &g.group) {
                (Some(p), _) => vec![p.to_string()],
                (None, Some(gr)) => bundle
                    .groups
                    .iter()
                    .filter(|x| *x.name == **gr)
                    .flat_map(|x| x.members.clone())
                    .collect(),
                _ => Vec::new(),
            };
            for (rtype, actions) in &role.permissions {
                let Some(action) = actions.first() else { continue };
                let rt = bundle.resource_types.iter().find(|t| t.name == *rtype);
                let network = rt.and_then(|t| t.networks.first().cloned());
                let privileged = role.privileged || rt.is_some_and(|t| t.is_privileged(action));
                let (tenant, id) = match &g.scope {
                    Scope::Tenant(t) => (Some(t.to_string()), "1".to_owned()),
                    Scope::Resources { resource_type, ids } if **resource_type == **rtype => {
                        (None, ids.first().map_or_else(|| "1".to_owned(), |i| i.to_string()))
                    }
                    // Owned resources would need an owner attribute per request: not drawn.
                    Scope::Resources { .. } | Scope::Own { .. } => continue,
                    Scope::All => (Some("any-tenant".to_owned()), "1".to_owned()),
                };
                for p in &grantees {
                    templates.push(Template {
                        principal: p.clone(),
                        action: action.clone(),
                        resource_type: rtype.clone(),
                        tenant: tenant.clone(),
                        id: id.clone(),
                        elevated_role: privileged.then(|| role.name.clone()),
                        network: network.clone(),
                    });
                }
            }
            if templates.len() >= 1_000_000 {
                break;
            }
        }
        anyhow::ensure!(!templates.is_empty(), "the bundle has no grant to build requests from");
        let zipf = Zipf::new(templates.len() as f64, skew)?;
        Ok(Workload {
            templates,
            zipf,
            skew,
            deny_share: 0.1,
        })
    }

    /// Takes out every template of the first principal whose request `allowed` accepts,
    /// and returns them (as a workload of that one principal, with no deny traffic) for
    /// `--revoke-every` to revoke and reinstate while the rest of the load goes on.
    pub fn split_probe(&mut self, allowed: impl Fn(&Request) -> bool, now: Timestamp) -> anyhow::Result<Workload> {
        let probe = self
            .templates
            .iter()
            .find(|t| allowed(&t.request(now, false)))
            .cloned()
            .context("no request drawn from the bundle is allowed, so a revocation cannot be observed")?;
        self.templates.retain(|t| t.principal != probe.principal);
        anyhow::ensure!(
            !self.templates.is_empty(),
            "the bundle's grants name only `{}`, who is revoked during the run",
            probe.principal
        );
        self.zipf = Zipf::new(self.templates.len() as f64, self.skew)?;
        Ok(Workload {
            templates: vec![probe],
            zipf: Zipf::new(1.0, self.skew)?,
            skew: self.skew,
            deny_share: 0.0,
        })
    }

    /// The principal every request of this workload is made for, if there is only one.
    pub fn sole_principal(&self) -> Option<&str> {
        match self.templates.as_slice() {
            [t] => Some(&t.principal),
            _ => None,
        }
    }

    /// One request at `now`, as the engine sees it.
    pub fn draw(&self, rng: &mut SmallRng, now: Timestamp) -> Request {
        let Some(t) = self.pick(rng) else {
            return Request::default();
        };
        t.request(now, rng.random_bool(self.deny_share))
    }

    fn pick(&self, rng: &mut SmallRng) -> Option<&Template> {
        let rank = self.zipf.sample(rng) as usize;
        self.templates.get(rank.saturating_sub(1)).or(self.templates.first())
    }

    /// A CheckResources call at `now`: one drawn request's principal and session, and `n`
    /// resources drawn from that principal's templates (each with its action).
    pub fn draw_resources(&self, rng: &mut SmallRng, now: Timestamp, n: usize) -> (Request, Vec<(Resource, String)>) {
        let Some(first) = self.pick(rng) else {
            return (Request::default(), Vec::new());
        };
        let own: Vec<&Template> = self
            .templates
            .iter()
            .filter(|t| t.principal == first.principal)
            .collect();
        let base = first.request(now, false);
        let items = (0..n)
            .filter_map(|_| {
                let t = own.get(rng.random_range(0..own.len().max(1)))?;
                let r = t.request(now, rng.random_bool(self.deny_share));
                Some((r.resource, r.action))
            })
            .collect();
        (base, items)
    }
}

impl Template {
    /// The request at `now`; `deny` sends it to a tenant no one holds.
    fn request(&self, now: Timestamp, deny: bool) -> Request {
        Request {
            principal: self.principal.clone(),
            action: self.action.clone(),
            resource: Resource {
                resource_type: self.resource_type.clone(),
                id: self.id.clone(),
                tenant: if deny {
                    Some("no-such-tenant".to_owned())
                } else {
                    self.tenant.clone()
                },
                attributes: Default::default(),
            },
            session: Session {
                authenticated_at: Some(now),
                last_activity: Some(now),
                factors: vec![Factor::Password, Factor::Totp],
                elevated_role: self.elevated_role.clone(),
                elevated_at: self.elevated_role.as_ref().map(|_| now),
                network: self.network.clone(),
                ..Session::default()
            },
            at: Some(now),
        }
    }
}

/// The wire form of an engine request.
pub fn to_wire(r: &Request) -> pb::CheckRequest {
    pb::CheckRequest {
        principal: r.principal.clone(),
        action: r.action.clone(),
        resource: Some(resource_to_wire(&r.resource)),
        session: Some(session_to_wire(r)),
        at: r.at.map(|t| t.0),
        min_version: 0,
        min_overlay_seq: 0,
        hide_forbidden: false,
    }
}

/// A CheckResources call on the wire: `base`'s principal, session and time, and each
/// resource with its one action.
pub fn resources_to_wire(base: &Request, items: &[(Resource, String)]) -> pb::CheckResourcesRequest {
    let wire = to_wire(base);
    pb::CheckResourcesRequest {
        principal: wire.principal,
        session: wire.session,
        at: wire.at,
        items: items
            .iter()
            .map(|(resource, action)| pb::ResourceActions {
                resource: Some(resource_to_wire(resource)),
                actions: vec![action.clone()],
            })
            .collect(),
        ..Default::default()
    }
}

/// The wire form of an engine resource.
fn resource_to_wire(r: &Resource) -> pb::Resource {
    pb::Resource {
        r#type: r.resource_type.clone(),
        id: r.id.clone(),
        tenant: r.tenant.clone(),
        attributes: Default::default(),
    }
}

/// The wire form of a drawn request's session.
fn session_to_wire(r: &Request) -> pb::Session {
    pb::Session {
        authenticated_at: r.session.authenticated_at.map(|t| t.0),
        last_activity: r.session.last_activity.map(|t| t.0),
        factors: vec!["password".into(), "totp".into()],
        elevated_role: r.session.elevated_role.clone(),
        elevated_at: r.session.elevated_at.map(|t| t.0),
        network: r.session.network.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::{Format, Overlay, compile, parse_bundle};
    use rand::SeedableRng;

    #[test]
    fn drawn_requests_mostly_allow_on_the_example() {
        let bytes = include_bytes!("../../examples/clinic-portal.yaml");
        let bundle = parse_bundle(bytes, Format::Yaml).unwrap();
        let snapshot = compile(&bundle, 1).unwrap();
        let w = Workload::from_bundle(&bundle, 1.1).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let now = Timestamp(1_795_428_000);
        let allowed = (0..1000)
            .filter(|_| snapshot.check(&w.draw(&mut rng, now), Overlay::empty()).is_allowed())
            .count();
        assert!((300..=950).contains(&allowed), "{allowed} of 1000 allowed");
    }

    #[test]
    fn resource_calls_are_one_principal_and_partly_allow() {
        let bytes = include_bytes!("../../examples/clinic-portal.yaml");
        let bundle = parse_bundle(bytes, Format::Yaml).unwrap();
        let snapshot = compile(&bundle, 1).unwrap();
        let w = Workload::from_bundle(&bundle, 1.1).unwrap();
        let mut rng = SmallRng::seed_from_u64(9);
        let now = Timestamp(1_795_428_000);
        let (mut allowed, mut asked) = (0, 0);
        for _ in 0..20 {
            let (mut base, items) = w.draw_resources(&mut rng, now, 50);
            assert_eq!(items.len(), 50);
            let items = items.into_iter().map(|(r, a)| (r, [a]));
            let principal = base.principal.clone();
            snapshot.check_each(&mut base, items, Overlay::empty(), |r, d| {
                assert_eq!(r.principal, principal);
                asked += 1;
                allowed += usize::from(d.is_allowed());
            });
        }
        // The example's terminated and dormant accounts deny whole calls.
        assert!((250..=900).contains(&allowed), "{allowed} of {asked} allowed");
    }

    #[test]
    fn the_probe_principal_is_allowed_and_leaves_the_rest_of_the_load() {
        let bytes = include_bytes!("../../examples/clinic-portal.yaml");
        let bundle = parse_bundle(bytes, Format::Yaml).unwrap();
        let snapshot = compile(&bundle, 1).unwrap();
        let mut w = Workload::from_bundle(&bundle, 1.1).unwrap();
        let now = Timestamp(1_795_428_000);
        let probe = w
            .split_probe(|r| snapshot.check(r, Overlay::empty()).is_allowed(), now)
            .unwrap();
        let who = probe.sole_principal().unwrap().to_owned();
        let mut rng = SmallRng::seed_from_u64(5);
        for _ in 0..200 {
            assert!(
                snapshot
                    .check(&probe.draw(&mut rng, now), Overlay::empty())
                    .is_allowed()
            );
            assert_ne!(w.draw(&mut rng, now).principal, who);
        }
    }
}
