//! RPC spans reach an OTLP collector, joined to the caller's trace (`traceparent`), and
//! the metrics reach it too (OpenTelemetry instruments over OTLP).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::sync::{Arc, Mutex};

/// A collector that keeps (span name, trace id hex) of every span and the names of every
/// metric exported to it.
#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<(String, String)>>>, Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut seen = self.1.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                seen.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    seen.push((span.name, span.trace_id.iter().map(|b| format!("{b:02x}")).collect()));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_spans_and_metrics_are_exported_over_otlp() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let c = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(c.clone()))
            .add_service(MetricsServiceServer::new(c))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let dir = temp_dir("traces");
    let port = free_port();
    let otlp_url = format!("http://{otlp}");
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http_flag = http.to_string();
    let mut child = spawn_serve(&dir, port, &["--otlp-endpoint", &otlp_url, "--http-listen", &http_flag]);
    let channel = connect(port).await;
    let mut client = portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient::new(channel);
    // The child reads the system clock: the example's fixed time is a what-if (admin token).
    let mut req = admin(ann_reads());
    req.metadata_mut().insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    client.check(req).await.unwrap();
    // The same over AuthZEN: its span joins the trace the HTTP caller names.
    let body = format!(
        r#"{{"subject": {{"id": "dr-ann"}}, "action": {{"name": "read"}},
            "resource": {{"type": "patient_record", "id": "p-1", "properties": {{"tenant": "clinic-north"}}}},
            "context": {{"at": {AT}, "authenticated_at": {}, "last_activity": {}}}}}"#,
        AT - 600,
        AT - 60
    );
    let answer = http_post(http, &body).await;
    assert!(answer.contains(r#""decision":true"#), "{answer}");

    // Graceful stop flushes the batch of spans.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let seen = collector.0.lock().unwrap().clone();
    assert!(
        seen.contains(&("Check".to_owned(), "0af7651916cd43dd8448eb211c80319c".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("Check".to_owned(), "4bf92f3577b34da6a3ce929d0e0e4736".to_owned())),
        "the AuthZEN call's span is not in its caller's trace: {seen:?}"
    );
    // Graceful stop also exports the metrics: the decision counter and the RPC histogram.
    let metrics = collector.1.lock().unwrap().clone();
    for name in [
        "portcullis_decisions",
        "portcullis_rpc_duration",
        "portcullis_snapshot_version",
    ] {
        assert!(metrics.iter().any(|m| m == name), "{name} not in {metrics:?}");
    }
}

/// One AuthZEN evaluation over HTTP/1.1 with a `traceparent` and the admin token (the
/// child reads the system clock, so the example's time is a what-if).
async fn http_post(addr: std::net::SocketAddr, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /access/v1/evaluation HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n\
         authorization: Bearer {ADMIN_TOKEN}\r\n\
         traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
