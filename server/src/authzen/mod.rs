//! The OpenID AuthZEN Authorization API 1.0 over HTTP, on its own listener
//! (`--http-listen`). Each endpoint is a thin mapping onto the gRPC service: the request
//! becomes a `portcullis.v1` message and goes through the same service methods, so time
//! (the server's clock), consistency tokens, the audit trail, metrics and traces are the
//! same for both transports. Admission uses the same credentials and scopes
//! (`scopes::AccessPolicy::identify`), overload the same permits as the edge layer, and
//! errors the same mapping (`status::http_status`).
//!
//! | endpoint | maps onto | scope |
//! |---|---|---|
//! | `POST /access/v1/evaluation` | Check | check |
//! | `POST /access/v1/evaluations` | BatchCheck (execute_all) or Check per item | check |
//! | `POST /access/v1/search/subject` | ListSubjects, usable paths only | review |
//! | `POST /access/v1/search/resource` | FilterRows, each listed id confirmed by a check | check |
//! | `POST /access/v1/search/action` | BatchCheck over the type's actions | check |
//! | `GET /.well-known/authzen-configuration` | PDP metadata | none |

mod wire;

pub use wire::BadField;

use crate::api::{AuthorizationApi, Telemetry};
use crate::engine::Engine;
use crate::scopes::{AccessPolicy, Refusal, Scope};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_server::AuthorizationService;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wire::{Evaluation, Evaluations, Search, Semantic};

/// Marks a call that arrived over the AuthZEN binding (set by the server, never by a
/// caller); audit records name the caller `authzen ADDR ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaAuthzen;

/// Longest page the search endpoints return.
const MAX_PAGE: usize = 1_000;
/// Page size when the request gives none.
const DEFAULT_PAGE: usize = 100;

/// What the endpoints share.
#[derive(Debug, Clone)]
pub struct Binding {
    api: AuthorizationApi,
    engine: Arc<Engine>,
    access: Arc<AccessPolicy>,
    telemetry: Telemetry,
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    max_batch: usize,
    /// `http://ADDR` or `https://ADDR`, for the metadata document.
    base: String,
}

impl Binding {
    /// The binding over `api`, admitting callers by `access`, drawing decision permits
    /// from `permits`, each call at most `request_timeout`, batches at most `max_batch`,
    /// served at `addr` (over TLS when `tls`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: AuthorizationApi,
        engine: Arc<Engine>,
        access: AccessPolicy,
        telemetry: Telemetry,
        permits: Arc<Semaphore>,
        request_timeout: Duration,
        max_batch: usize,
        addr: SocketAddr,
        tls: bool,
    ) -> Binding {
        Binding {
            api,
            engine,
            access: Arc::new(access),
            telemetry,
            permits,
            request_timeout,
            max_batch,
            base: format!("{}://{addr}", if tls { "https" } else { "http" }),
        }
    }
}

/// The client certificate (DER) of a TLS connection, for admission by certificate name.
#[derive(Debug, Clone)]
struct PeerCertificate(Vec<u8>);

/// Serves the binding on `listener` until `shutdown` completes, over TLS when `tls` is
/// given (with client certificates when it asks for them); bodies over `max_body_bytes`
/// are refused with 413.
pub async fn serve(
    listener: TcpListener,
    binding: Binding,
    max_body_bytes: usize,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/access/v1/search/subject", post(search_subject))
        .route("/access/v1/search/resource", post(search_resource))
        .route("/access/v1/search/action", post(search_action))
        .route("/.well-known/authzen-configuration", get(metadata))
        .fallback(|| async { ApiError::new(404, "not_found", None, "no such AuthZEN endpoint") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(binding);
    let Some(tls) = tls else {
        return axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("AuthZEN accept failed: {e}");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A handshake that stalls or fails costs its own task only.
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, "AuthZEN TLS handshake failed: {e}"),
                Err(_) => return tracing::debug!(%peer, "AuthZEN TLS handshake timed out"),
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate(c.as_ref().to_vec()));
            let mut app = app.layer(axum::Extension(ConnectInfo(peer)));
            if let Some(c) = certificate {
                app = app.layer(axum::Extension(c));
            }
            let service = hyper_util::service::TowerToHyperService::new(app);
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, "AuthZEN connection ended: {e}");
            }
        });
    }
}

/// An error as the binding answers it: a status and `{"error": {code, field, message}}`.
#[derive(Debug)]
pub struct ApiError {
    status: u16,
    code: &'static str,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, field: Option<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            field,
            message: message.into(),
        }
    }
}

impl From<BadField> for ApiError {
    fn from(b: BadField) -> ApiError {
        let message = format!("`{}` {}", b.field, b.message);
        ApiError::new(400, "invalid_argument", Some(b.field), message)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> ApiError {
        let code = match s.code() {
            tonic::Code::InvalidArgument => "invalid_argument",
            tonic::Code::Unauthenticated => "unauthenticated",
            tonic::Code::PermissionDenied => "permission_denied",
            tonic::Code::ResourceExhausted => "resource_exhausted",
            tonic::Code::FailedPrecondition => "failed_precondition",
            tonic::Code::Unavailable => "unavailable",
            tonic::Code::DeadlineExceeded => "deadline_exceeded",
            tonic::Code::NotFound => "not_found",
            _ => "internal",
        };
        ApiError::new(crate::status::http_status(s.code()), code, None, s.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({"status": self.status, "code": self.code, "message": self.message});
        if let (Some(field), Some(map)) = (self.field, error.as_object_mut()) {
            map.insert("field".into(), field.into());
        }
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Where a request came from: the address, and the client certificate over mutual TLS.
struct Peer {
    addr: SocketAddr,
    certificate: Option<PeerCertificate>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Peer, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        Ok(Peer {
            addr,
            certificate: parts.extensions.get::<PeerCertificate>().cloned(),
        })
    }
}

/// The caller of one HTTP request, admitted for `need`.
struct Call {
    peer: SocketAddr,
    headers: HeaderMap,
    identity: Option<crate::scopes::Identity>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Binding {
    /// Admits a request needing `need` (refusals of review calls are audited, as over
    /// gRPC) and, for decision calls, takes a permit or refuses with 429.
    async fn admit(&self, need: Scope, path: &str, peer: Peer, headers: HeaderMap) -> Result<Call, ApiError> {
        let certificate = peer.certificate.map(|c| c.0);
        let peer = peer.addr;
        let identity = match self
            .access
            .identify(need, headers.get(header::AUTHORIZATION), certificate)
        {
            Ok(identity) => identity,
            Err(refusal) => {
                let (status, code, message) = match refusal {
                    Refusal::Unauthenticated(m) => (401, "unauthenticated", m),
                    Refusal::Denied(m) => (403, "permission_denied", m),
                };
                if need != Scope::Check {
                    let caller = self.caller(peer, &headers, None);
                    self.telemetry.refused(&caller, path, code, &message).await;
                }
                return Err(ApiError::new(status, code, None, message));
            }
        };
        let permit = if need == Scope::Check {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.telemetry.metrics.shed();
                    return Err(ApiError::new(
                        429,
                        "resource_exhausted",
                        None,
                        "too many decision calls in flight; retry with backoff",
                    ));
                }
            }
        } else {
            None
        };
        Ok(Call {
            peer,
            headers,
            identity,
            _permit: permit,
        })
    }

    fn caller(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        identity: Option<crate::scopes::Identity>,
    ) -> crate::api::Caller {
        let request = self.request(peer, headers, identity, ());
        crate::api::Caller::of(&request)
    }

    /// `message` as a tonic request carrying the caller's address, identity, bearer
    /// token and `traceparent`, as the gRPC transport would have.
    fn request<T>(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        identity: Option<crate::scopes::Identity>,
        message: T,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let ext = request.extensions_mut();
        ext.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer),
        });
        ext.insert(ViaAuthzen);
        if let Some(identity) = identity {
            ext.insert(identity);
        }
        for name in ["authorization", "traceparent"] {
            if let Some(v) = headers
                .get(name)
                .and_then(|v| tonic::metadata::MetadataValue::try_from(v.as_bytes()).ok())
            {
                request.metadata_mut().insert(name, v);
            }
        }
        request
    }

    /// Runs `f` within the server's deadline.
    async fn timed<T>(&self, f: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        tokio::time::timeout(self.request_timeout, f).await.unwrap_or_else(|_| {
            Err(ApiError::new(
                504,
                "deadline_exceeded",
                None,
                format!(
                    "the call took longer than the server's {:?} limit",
                    self.request_timeout
                ),
            ))
        })
    }

    async fn check(&self, call: &Call, request: pb::CheckRequest) -> Result<pb::Decision, ApiError> {
        let request = self.request(call.peer, &call.headers, call.identity.clone(), request);
        let response = self.api.check(request).await?.into_inner();
        response
            .decision
            .ok_or_else(|| ApiError::new(500, "internal", None, "the check returned no decision"))
    }

    /// The decisions on `requests`, in order, as one BatchCheck (none asked: none given).
    async fn batch(&self, call: &Call, requests: Vec<pb::CheckRequest>) -> Result<Vec<pb::Decision>, ApiError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let batch = pb::BatchCheckRequest {
            min_version: requests.iter().map(|r| r.min_version).max().unwrap_or(0),
            min_overlay_seq: requests.iter().map(|r| r.min_overlay_seq).max().unwrap_or(0),
            requests,
        };
        let request = self.request(call.peer, &call.headers, call.identity.clone(), batch);
        match self.api.batch_check(request).await {
            Ok(r) => Ok(r.into_inner().decisions),
            // BatchCheck names `requests[i]`; AuthZEN callers sent `evaluations[i]`.
            Err(s) => {
                let message = s.message().replacen("requests[", "evaluations[", 1);
                Err(tonic::Status::new(s.code(), message).into())
            }
        }
    }
}

/// The body as JSON of type `T`, or 400 naming where it failed (413 when too large).
fn body<T: serde::de::DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|r| {
        let status = r.status().as_u16();
        let code = if status == 413 {
            "payload_too_large"
        } else {
            "invalid_argument"
        };
        ApiError::new(status, code, None, r.body_text())
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            400,
            "invalid_argument",
            None,
            format!(
                "the body is not a valid request: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// What every endpoint reads from a request: where it came from, its headers, its body.
struct Input {
    peer: Peer,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Input {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Input, Self::Rejection> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let peer = Peer::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(axum::extract::Request::from_parts(parts, body), state).await;
        Ok(Input { peer, headers, bytes })
    }
}

impl Binding {
    /// One endpoint: admits the caller for `need`, reads the body as `T`, runs `f`, all
    /// within the server's deadline, and answers JSON or the error.
    async fn endpoint<T: serde::de::DeserializeOwned>(
        &self,
        need: Scope,
        path: &str,
        input: Input,
        f: impl AsyncFnOnce(&Binding, &Call, T) -> Result<Value, ApiError>,
    ) -> Response {
        respond(
            self.timed(async {
                let call = self.admit(need, path, input.peer, input.headers).await?;
                let request: T = body(input.bytes)?;
                f(self, &call, request).await
            })
            .await,
        )
    }
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn respond(result: Result<Value, ApiError>) -> Response {
    result.map_or_else(IntoResponse::into_response, ok)
}

async fn evaluation(State(b): State<Binding>, input: Input) -> Response {
    b.endpoint(
        Scope::Check,
        "/access/v1/evaluation",
        input,
        async |b, call, e: Evaluation| {
            let d = b
                .check(call, wire::check_request(&e, &Evaluation::default(), "")?)
                .await?;
            Ok(serde_json::to_value(wire::Decision::from(&d)).unwrap_or_default())
        },
    )
    .await
}

async fn evaluations(State(b): State<Binding>, input: Input) -> Response {
    b.endpoint(
        Scope::Check,
        "/access/v1/evaluations",
        input,
        async |b, call, r: Evaluations| {
            let semantic = r.options.semantic()?;
            if r.evaluations.is_empty() {
                // No items: the request is one evaluation, answered as one.
                let d = b
                    .check(call, wire::check_request(&r.defaults, &Evaluation::default(), "")?)
                    .await?;
                return Ok(serde_json::to_value(wire::Decision::from(&d)).unwrap_or_default());
            }
            if r.evaluations.len() > b.max_batch {
                return Err(ApiError::new(
                    400,
                    "invalid_argument",
                    Some("evaluations".into()),
                    format!(
                        "{} evaluations exceed the limit of {}",
                        r.evaluations.len(),
                        b.max_batch
                    ),
                ));
            }
            let requests = r
                .evaluations
                .iter()
                .enumerate()
                .map(|(i, e)| wire::check_request(e, &r.defaults, &format!("evaluations[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let decisions = match semantic {
                Semantic::ExecuteAll => b.batch(call, requests).await?,
                Semantic::DenyOnFirstDeny | Semantic::PermitOnFirstPermit => {
                    // Items after the deciding one are not evaluated (nor audited).
                    let stop_on_allow = semantic == Semantic::PermitOnFirstPermit;
                    let mut out = Vec::new();
                    for request in requests {
                        let d = b.check(call, request).await?;
                        let allowed = d.effect == pb::Effect::Allow as i32;
                        out.push(d);
                        if allowed == stop_on_allow {
                            break;
                        }
                    }
                    out
                }
            };
            let evaluations: Vec<wire::Decision> = decisions.iter().map(wire::Decision::from).collect();
            Ok(json!({ "evaluations": evaluations }))
        },
    )
    .await
}

/// The page of `items` (sorted, distinct) after `token`, and the next token.
fn page(items: Vec<String>, page: &wire::PageRequest) -> Result<(Vec<String>, String), ApiError> {
    let after = match page.next_token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| BadField {
                    field: "page.next_token".into(),
                    message: "is not a token this server issued".into(),
                })?,
        ),
    };
    let limit = page
        .limit
        .map_or(DEFAULT_PAGE, |l| usize::try_from(l).unwrap_or(MAX_PAGE))
        .clamp(1, MAX_PAGE);
    let rest: Vec<String> = items
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| i > a))
        .collect();
    let more = rest.len() > limit;
    let shown: Vec<String> = rest.into_iter().take(limit).collect();
    let next = match shown.last() {
        Some(last) if more => hex::encode(last.as_bytes()),
        _ => String::new(),
    };
    Ok((shown, next))
}

fn required<'a, T>(part: &'a Option<T>, field: &str) -> Result<&'a T, ApiError> {
    part.as_ref().ok_or_else(|| {
        BadField {
            field: field.to_owned(),
            message: "is required".into(),
        }
        .into()
    })
}

async fn search_subject(State(b): State<Binding>, input: Input) -> Response {
    b.endpoint(
        Scope::Review,
        "/access/v1/search/subject",
        input,
        async |b, call, s: Search| {
            let subject = required(&s.query.subject, "subject")?;
            let action = required(&s.query.action, "action")?;
            let resource = required(&s.query.resource, "resource")?;
            let props = wire::wire_resource(resource, "resource.properties")?;
            // The owner is the attribute the resource type names (`owner` by default).
            let owner = b
                .engine
                .live()
                .and_then(|l| l.snapshot.owner_attribute(&resource.kind).map(str::to_owned))
                .and_then(|attr| props.attributes.get(&attr).cloned());
            let mut probe = pb::CheckRequest::default();
            if let Some(context) = &s.query.context {
                wire::apply_context(&mut probe, context, "context")?;
            }
            let request = pb::ListSubjectsRequest {
                action: action.name.clone(),
                resource_type: resource.kind.clone(),
                tenant: props.tenant.clone(),
                resource_id: (!resource.id.is_empty()).then(|| resource.id.clone()),
                owner,
                at: probe.at,
                usable_only: true,
                min_version: probe.min_version,
            };
            let request = b.request(call.peer, &call.headers, call.identity.clone(), request);
            let paths = b.api.list_subjects(request).await?.into_inner().paths;
            let mut ids: Vec<String> = paths.into_iter().map(|p| p.principal).collect();
            ids.sort();
            ids.dedup();
            let (shown, next) = page(ids, &s.page)?;
            let results: Vec<Value> = shown
                .into_iter()
                .map(|id| json!({"type": subject.kind, "id": id}))
                .collect();
            Ok(json!({"results": results, "page": {"next_token": next}}))
        },
    )
    .await
}

async fn search_resource(State(b): State<Binding>, input: Input) -> Response {
    b.endpoint(
        Scope::Check,
        "/access/v1/search/resource",
        input,
        async |b, call, s: Search| {
            // The search as one evaluation: its subject, action, type, properties and session.
            let probe = wire::check_request(&s.query, &Evaluation::default(), "")?;
            let resource = required(&s.query.resource, "resource")?;
            let filter = pb::FilterRowsRequest {
                principal: probe.principal.clone(),
                action: probe.action.clone(),
                resource_type: resource.kind.clone(),
                session: probe.session.clone(),
                at: probe.at,
                min_version: probe.min_version,
                min_overlay_seq: probe.min_overlay_seq,
            };
            let request = b.request(call.peer, &call.headers, call.identity.clone(), filter);
            let f = b.api.filter_rows(request).await?.into_inner();
            // Portcullis holds no inventory: it lists the ids grants name, each confirmed
            // by a check, and returns the whole filter (tenant, owner and all-rows terms
            // included) in `context` for the caller to apply to its own store.
            let mut ids = f.resource_ids.clone();
            ids.sort();
            ids.dedup();
            let (candidates, next) = page(ids, &s.page)?;
            let checks: Vec<pb::CheckRequest> = candidates
                .iter()
                .map(|id| {
                    let mut r = probe.clone();
                    if let Some(res) = &mut r.resource {
                        res.id = id.clone();
                    }
                    r
                })
                .collect();
            let decisions = b.batch(call, checks).await?;
            let results: Vec<Value> = candidates
                .iter()
                .zip(&decisions)
                .filter(|(_, d)| d.effect == pb::Effect::Allow as i32)
                .map(|(id, _)| json!({"type": resource.kind, "id": id}))
                .collect();
            let kind = match pb::filter_rows_response::Kind::try_from(f.kind) {
                Ok(pb::filter_rows_response::Kind::All) => "all",
                Ok(pb::filter_rows_response::Kind::Some) => "some",
                _ => "none",
            };
            let params: Vec<Value> = f
                .sql_params
                .iter()
                .map(|p| match &p.value {
                    Some(pb::sql_param::Value::Text(t)) => json!(t),
                    Some(pb::sql_param::Value::TextArray(l)) => json!(l.values),
                    None => Value::Null,
                })
                .collect();
            Ok(json!({
                "results": results,
                "page": {"next_token": next},
                "context": {
                    "filter": {"kind": kind, "reason": f.reason, "tenant_ids": f.tenant_ids,
                               "sql": f.sql, "sql_params": params},
                    "version": f.version,
                }
            }))
        },
    )
    .await
}

async fn search_action(State(b): State<Binding>, input: Input) -> Response {
    b.endpoint(
        Scope::Check,
        "/access/v1/search/action",
        input,
        async |b, call, s: Search| {
            let resource = required(&s.query.resource, "resource")?;
            let actions: Vec<String> = b
                .engine
                .live()
                .and_then(|l| {
                    l.snapshot
                        .actions_of(&resource.kind)
                        .map(|a| a.map(str::to_owned).collect())
                })
                .unwrap_or_default();
            let requests = actions
                .iter()
                .map(|name| {
                    let e = Evaluation {
                        action: Some(wire::Action {
                            name: name.clone(),
                            properties: None,
                        }),
                        ..s.query.clone()
                    };
                    wire::check_request(&e, &Evaluation::default(), "")
                })
                .collect::<Result<Vec<_>, _>>()?;
            let decisions = b.batch(call, requests).await?;
            let allowed: Vec<String> = actions
                .into_iter()
                .zip(&decisions)
                .filter(|(_, d)| d.effect == pb::Effect::Allow as i32)
                .map(|(a, _)| a)
                .collect();
            let (shown, next) = page(allowed, &s.page)?;
            let results: Vec<Value> = shown.into_iter().map(|name| json!({"name": name})).collect();
            Ok(json!({"results": results, "page": {"next_token": next}}))
        },
    )
    .await
}

async fn metadata(State(b): State<Binding>) -> Response {
    let at = |path: &str| format!("{}{path}", b.base);
    ok(json!({
        "policy_decision_point": b.base,
        "access_evaluation_endpoint": at("/access/v1/evaluation"),
        "access_evaluations_endpoint": at("/access/v1/evaluations"),
        "search_subject_endpoint": at("/access/v1/search/subject"),
        "search_resource_endpoint": at("/access/v1/search/resource"),
        "search_action_endpoint": at("/access/v1/search/action"),
    }))
}
