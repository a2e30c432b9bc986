//! Who may call what: every RPC of `portcullis.v1` needs one of three scopes, and a tower
//! layer in front of the services admits a call only when its credential holds it.
//!
//! - `check`: decisions (Check, BatchCheck, CheckResources, FilterRows). Open without a credential only
//!   when no check credential is configured and the listener is loopback (or the operator
//!   says so explicitly).
//! - `review`: access reviews and the policy's inner workings (A2, A3): ListSubjects,
//!   ListPrincipalAccess, Explain, GetSnapshotInfo, ListVersions, ExportSnapshot.
//! - `admin`: every change, and the dry run before one. Implies `review` and `check`.
//!
//! A credential is a bearer token (kept as a SHA-256 digest) or a client certificate
//! whose subject common name or a subject alternative name (DNS or URI) is configured. No
//! credential is UNAUTHENTICATED, a wrong token too; a credential without the scope is
//! PERMISSION_DENIED naming the scope. Refused `review` and `admin` calls are audited.

use crate::api::Telemetry;
use crate::edge::BoxFuture;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Decisions.
    Check,
    /// Access reviews and policy inspection.
    Review,
    /// Changes.
    Admin,
}

impl Scope {
    /// The scope's name in config files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Review => "review",
            Scope::Admin => "admin",
        }
    }

    /// Parses a config file's scope name.
    pub fn parse(name: &str) -> Result<Scope, String> {
        match name {
            "check" => Ok(Scope::Check),
            "review" => Ok(Scope::Review),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope `{other}` (check, review, admin)")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scope each RPC needs, by gRPC method path. A method of `portcullis.v1` missing here
/// is refused (fail closed); the scope test fails when the protos gain one.
pub const METHOD_SCOPES: &[(&str, Scope)] = &[
    ("/portcullis.v1.AuthorizationService/Check", Scope::Check),
    ("/portcullis.v1.AuthorizationService/BatchCheck", Scope::Check),
    ("/portcullis.v1.AuthorizationService/CheckResources", Scope::Check),
    ("/portcullis.v1.AuthorizationService/FilterRows", Scope::Check),
    ("/portcullis.v1.AuthorizationService/ListSubjects", Scope::Review),
    ("/portcullis.v1.AuthorizationService/ListPrincipalAccess", Scope::Review),
    ("/portcullis.v1.AuthorizationService/Explain", Scope::Review),
    ("/portcullis.v1.PolicyAdminService/GetSnapshotInfo", Scope::Review),
    ("/portcullis.v1.PolicyAdminService/ListVersions", Scope::Review),
    ("/portcullis.v1.PolicyAdminService/ExportSnapshot", Scope::Review),
    ("/portcullis.v1.PolicyAdminService/PushSnapshot", Scope::Admin),
    ("/portcullis.v1.PolicyAdminService/ValidateSnapshot", Scope::Admin),
    ("/portcullis.v1.PolicyAdminService/Rollback", Scope::Admin),
    ("/portcullis.v1.PolicyAdminService/RevokePrincipal", Scope::Admin),
    ("/portcullis.v1.PolicyAdminService/ReinstatePrincipal", Scope::Admin),
    ("/portcullis.v1.PolicyAdminService/GrantTemporary", Scope::Admin),
];

/// The scope an RPC of ours needs, by method path.
pub fn scope_of(path: &str) -> Option<Scope> {
    METHOD_SCOPES.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// What a call to `path` needs: `Ok(None)` for the open services (health, reflection),
/// `Err` for an unknown method of ours.
fn required(path: &str) -> Result<Option<Scope>, ()> {
    if let Some(scope) = scope_of(path) {
        return Ok(Some(scope));
    }
    if path.starts_with("/portcullis.") {
        Err(())
    } else {
        Ok(None)
    }
}

/// The scopes a credential holds, with what they imply (`admin` ⊇ `review`, `check`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Holds `scopes` and what they imply.
    pub fn of(scopes: &[Scope]) -> Scopes {
        let mut bits = 0;
        for s in scopes {
            bits |= match s {
                Scope::Check => 1,
                Scope::Review => 2,
                Scope::Admin => 7,
            };
        }
        Scopes(bits)
    }

    /// Whether `scope` is held.
    pub fn has(self, scope: Scope) -> bool {
        let bit = match scope {
            Scope::Check => 1,
            Scope::Review => 2,
            Scope::Admin => 4,
        };
        self.0 & bit != 0
    }

    fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }
}

/// Set on an admitted request: who called, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The credential's configured name (`admin`, `check`, or a `[[credentials]]` name).
    pub name: Arc<str>,
    /// What it may do.
    pub scopes: Scopes,
}

/// The configured credentials.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    tokens: Vec<([u8; 32], Arc<str>, Scopes)>,
    certificates: Vec<(String, Arc<str>, Scopes)>,
}

impl Credentials {
    /// Accepts a token given in plain text (hashed at once).
    pub fn add_token(&mut self, name: &str, token: &str, scopes: &[Scope]) {
        self.tokens
            .push((Sha256::digest(token.as_bytes()).into(), name.into(), Scopes::of(scopes)));
    }

    /// Accepts a token given as a hex SHA-256 digest.
    pub fn add_token_digest(&mut self, name: &str, hex_digest: &str, scopes: &[Scope]) -> Result<(), String> {
        let bytes =
            hex::decode(hex_digest.trim()).map_err(|e| format!("token digest `{hex_digest}` is not hex: {e}"))?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("token digest `{hex_digest}` is not 32 bytes"))?;
        self.tokens.push((digest, name.into(), Scopes::of(scopes)));
        Ok(())
    }

    /// Accepts client certificates whose subject common name or a subject alternative name
    /// (DNS or URI) is `subject`.
    pub fn add_certificate(&mut self, name: &str, subject: &str, scopes: &[Scope]) {
        self.certificates
            .push((subject.to_owned(), name.into(), Scopes::of(scopes)));
    }

    /// Whether any credential holds `scope`.
    pub fn any_with(&self, scope: Scope) -> bool {
        self.all_scopes().any(|s| s.has(scope))
    }

    /// Whether a credential for decisions is configured (one with `check` that is not an
    /// admin's): then check calls need a credential.
    pub fn any_for_checks(&self) -> bool {
        self.all_scopes().any(|s| s.has(Scope::Check) && !s.has(Scope::Admin))
    }

    fn all_scopes(&self) -> impl Iterator<Item = Scopes> + '_ {
        let tokens = self.tokens.iter().map(|(_, _, s)| *s);
        tokens.chain(self.certificates.iter().map(|(_, _, s)| *s))
    }

    /// The credential a bearer token belongs to; constant time in the token's content.
    pub fn token(&self, token: &str) -> Option<(&Arc<str>, Scopes)> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (digest, name, scopes) in &self.tokens {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some((name, *scopes));
            }
        }
        found
    }

    /// The credentials a client certificate (DER) matches, merged.
    fn certificate(&self, der: &[u8]) -> Option<(&Arc<str>, Scopes)> {
        if self.certificates.is_empty() {
            return None;
        }
        let names = certificate_names(der);
        let mut found: Option<(&Arc<str>, Scopes)> = None;
        for (subject, name, scopes) in &self.certificates {
            if names.iter().any(|n| n == subject) {
                found = Some(match found {
                    Some((first, held)) => (first, held.union(*scopes)),
                    None => (name, *scopes),
                });
            }
        }
        found
    }
}

/// A certificate's subject common names and DNS and URI alternative names.
fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) | GeneralName::URI(d) => names.push((*d).to_owned()),
                _ => {}
            }
        }
    }
    names
}

/// The access rules the layer applies.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Who is known.
    pub credentials: Credentials,
    /// Whether `check` calls without a credential are admitted.
    pub open_checks: bool,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credential, or one that is not known: UNAUTHENTICATED, HTTP 401.
    Unauthenticated(String),
    /// A known credential without the scope: PERMISSION_DENIED, HTTP 403.
    Denied(String),
}

impl AccessPolicy {
    /// Decides whether a call, by its path, headers and connection, is admitted.
    fn admit<B>(&self, req: &http::Request<B>) -> Result<Option<Identity>, (Option<Scope>, Refusal)> {
        let path = req.uri().path();
        let need = required(path).map_err(|()| {
            (
                None,
                Refusal::Denied(format!("`{path}` is not a method this server grants access to")),
            )
        })?;
        let Some(need) = need else { return Ok(None) };
        let header = req.headers().get(http::header::AUTHORIZATION);
        self.identify(need, header, peer_certificate(req))
            .map_err(|r| (Some(need), r))
    }

    /// Whether a caller presenting `authorization` (a header value) and a client
    /// certificate (DER) may make a call that needs `need`; who it is when it presented
    /// a credential. Every transport admits calls through this.
    pub fn identify(
        &self,
        need: Scope,
        authorization: Option<&http::HeaderValue>,
        certificate: Option<Vec<u8>>,
    ) -> Result<Option<Identity>, Refusal> {
        let from_token = match authorization {
            None => None,
            Some(v) => {
                let token = v.to_str().ok().and_then(crate::auth::bearer_token).ok_or_else(|| {
                    Refusal::Unauthenticated("the authorization header must be `Bearer TOKEN`".into())
                })?;
                Some(
                    self.credentials
                        .token(token)
                        .ok_or_else(|| Refusal::Unauthenticated("invalid bearer token".into()))?,
                )
            }
        };
        let from_certificate = certificate.and_then(|der| self.credentials.certificate(&der));
        let identity = match (from_token, from_certificate) {
            (Some((name, a)), Some((_, b))) => Some((name, a.union(b))),
            (one, other) => one.or(other),
        };
        match identity {
            Some((name, scopes)) if scopes.has(need) => Ok(Some(Identity {
                name: name.clone(),
                scopes,
            })),
            Some((name, _)) => Err(Refusal::Denied(format!(
                "the credential `{name}` lacks the `{need}` scope this call needs"
            ))),
            None if need == Scope::Check && self.open_checks => Ok(None),
            None => Err(Refusal::Unauthenticated(format!(
                "this call needs a credential with the `{need}` scope"
            ))),
        }
    }
}

/// The connection's address, from the connect info tonic attaches.
pub fn peer_address<B>(req: &http::Request<B>) -> Option<std::net::SocketAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// The client's end-entity certificate, when it presented one.
fn peer_certificate<B>(req: &http::Request<B>) -> Option<Vec<u8>> {
    let certs = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?;
    certs.first().map(|c| c.as_ref().to_vec())
}

/// The tower layer that applies an `AccessPolicy` to every call.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    policy: Arc<AccessPolicy>,
    telemetry: Telemetry,
}

impl AccessLayer {
    /// Applies `policy`; refusals of `review` and `admin` calls go to `telemetry`'s audit trail.
    pub fn new(policy: AccessPolicy, telemetry: Telemetry) -> AccessLayer {
        AccessLayer {
            policy: Arc::new(policy),
            telemetry,
        }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            layer: self.clone(),
        }
    }
}

/// The services behind an `AccessLayer`.
#[derive(Debug, Clone)]
pub struct Access<S> {
    inner: S,
    layer: AccessLayer,
}

impl<S, B> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.layer.policy.admit(&req) {
            Ok(identity) => {
                if let Some(identity) = identity {
                    req.extensions_mut().insert(identity);
                }
                Box::pin(self.inner.call(req))
            }
            Err((need, refusal)) => {
                let (status, code) = match refusal {
                    Refusal::Unauthenticated(m) => (Status::unauthenticated(m), "unauthenticated"),
                    Refusal::Denied(m) => (Status::permission_denied(m), "permission_denied"),
                };
                let audited = need.is_none_or(|s| s != Scope::Check);
                let path = req.uri().path().to_owned();
                let telemetry = self.layer.telemetry.clone();
                let caller = crate::api::Caller::of_http(&req);
                Box::pin(async move {
                    if audited {
                        telemetry.refused(&caller, &path, code, status.message()).await;
                    }
                    Ok(status.into_http())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_review_and_check_but_not_the_other_way() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(admin.has(Scope::Review) && admin.has(Scope::Check) && admin.has(Scope::Admin));
        let review = Scopes::of(&[Scope::Review]);
        assert!(review.has(Scope::Review) && !review.has(Scope::Check) && !review.has(Scope::Admin));
        assert!(!Scopes::default().has(Scope::Check));
        assert_eq!(Scope::parse("review"), Ok(Scope::Review));
        assert!(Scope::parse("root").is_err());
    }

    #[test]
    fn unknown_methods_of_ours_are_refused_and_others_are_open() {
        assert_eq!(
            required("/portcullis.v1.AuthorizationService/Check"),
            Ok(Some(Scope::Check))
        );
        assert_eq!(required("/portcullis.v1.AuthorizationService/Teleport"), Err(()));
        assert_eq!(required("/grpc.health.v1.Health/Check"), Ok(None));
    }
}
