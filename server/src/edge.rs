//! The outermost layer, in front of every service: load shedding, the server's own
//! deadline, and the status codes clients retry on rather than the ones the transport picks.
//!
//! - Decision calls (scope `check`) past `max_concurrent_decisions` in flight are refused
//!   at once with RESOURCE_EXHAUSTED instead of queueing (overload is shed, not queued);
//!   admin and review calls are not counted, so they cannot be shed by a check flood.
//! - A call gets the shorter of `request_timeout` and the client's `grpc-timeout`; past it
//!   the answer is DEADLINE_EXCEEDED (tonic's own timeout says CANCELLED).
//! - A request that does not decode is the caller's fault: INVALID_ARGUMENT, not INTERNAL.
//! - A message over the size limit is RESOURCE_EXHAUSTED, not OUT_OF_RANGE.

use crate::metrics::Metrics;
use crate::scopes::{Scope, scope_of};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tonic::{Code, Status};

/// Applies the concurrency limit, the deadline and the status mapping.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    /// Longest a call may take, whatever the client asks.
    request_timeout: Duration,
    /// Permits for decision calls in flight.
    decisions: Arc<Semaphore>,
    limit: usize,
    /// The most of a refused call's body read before answering: one whole message.
    drain_bytes: usize,
    metrics: Arc<Metrics>,
}

impl EdgeLayer {
    /// At most `max_decisions` decision calls in flight, each at most `request_timeout`;
    /// `max_message_bytes` is the request size limit.
    pub fn new(
        request_timeout: Duration,
        max_decisions: usize,
        max_message_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> EdgeLayer {
        EdgeLayer {
            request_timeout,
            decisions: Arc::new(Semaphore::new(max_decisions)),
            limit: max_decisions,
            drain_bytes: max_message_bytes.saturating_add(GRPC_FRAME_HEADER),
            metrics,
        }
    }
}

impl EdgeLayer {
    /// The permits for decision calls in flight, shared with the HTTP binding so both
    /// transports draw on one limit.
    pub fn decision_permits(&self) -> Arc<Semaphore> {
        self.decisions.clone()
    }
}

/// The default `max_concurrent_decisions`: 256 per core.
pub fn default_max_decisions() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * 256
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

/// The services behind an `EdgeLayer`.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

/// The future type of the tower layers in front of the services.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Edge<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let permit = if scope_of(req.uri().path()) == Some(Scope::Check) {
            match self.layer.decisions.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.layer.metrics.shed();
                    let status = Status::resource_exhausted(format!(
                        "the server is at its limit of {} decision calls in flight; retry with backoff",
                        self.layer.limit
                    ));
                    let (body, most) = (req.into_body(), self.layer.drain_bytes);
                    return Box::pin(async move {
                        drain(body, most).await;
                        Ok(status.into_http())
                    });
                }
            }
        } else {
            None
        };
        let asked = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let deadline = asked.map_or(self.layer.request_timeout, |a| a.min(self.layer.request_timeout));
        let call = self.inner.call(req);
        Box::pin(async move {
            let _permit = permit;
            match tokio::time::timeout(deadline, call).await {
                Ok(Ok(mut response)) => {
                    remap(response.headers_mut());
                    Ok(response)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call did not finish within its deadline of {} ms",
                    deadline.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// The bytes in front of each gRPC message: a compression flag and the length.
const GRPC_FRAME_HEADER: usize = 5;
/// The longest a refused call's body is waited for.
const DRAIN_TIME: Duration = Duration::from_millis(50);

/// Reads what remains of a refused call's request (a decision call is a few hundred bytes,
/// usually already here), so the early answer does not cut off a request the client is
/// still sending: HTTP/2 clients report that reset as a transport error, not as the
/// RESOURCE_EXHAUSTED they can retry. Reads at most `most` bytes, discarding them as they
/// come, for at most `DRAIN_TIME`; past either the rest is reset.
async fn drain<B: http_body::Body>(body: B, most: usize) {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let mut body = std::pin::pin!(body);
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read < most && !body.is_end_stream() {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, bytes::Buf::remaining),
                _ => break,
            }
        }
    })
    .await;
}

/// Rewrites a status the transport put in the headers (a trailers-only response) when
/// clients expect another code for it.
fn remap(headers: &mut http::HeaderMap) {
    if !headers.contains_key("grpc-status") {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let code = match status.code() {
        Code::Internal if status.message().starts_with("failed to decode Protobuf message") => Code::InvalidArgument,
        Code::OutOfRange if status.message().contains("message length too large") => Code::ResourceExhausted,
        _ => return,
    };
    let _ = Status::new(code, status.message()).add_header(headers);
}

/// A `grpc-timeout` header value: up to eight digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_unit_and_nonsense_is_ignored() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn transport_codes_become_the_ones_clients_expect() {
        let mut h = http::HeaderMap::new();
        Status::internal("failed to decode Protobuf message: invalid wire type")
            .add_header(&mut h)
            .unwrap();
        remap(&mut h);
        assert_eq!(Status::from_header_map(&h).unwrap().code(), Code::InvalidArgument);
        let mut h = http::HeaderMap::new();
        Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 1 bytes")
            .add_header(&mut h)
            .unwrap();
        remap(&mut h);
        assert_eq!(Status::from_header_map(&h).unwrap().code(), Code::ResourceExhausted);
        let mut h = http::HeaderMap::new();
        Status::internal("storage failure").add_header(&mut h).unwrap();
        remap(&mut h);
        assert_eq!(Status::from_header_map(&h).unwrap().code(), Code::Internal);
    }
}
