//! The yardstick: a bare tonic server with `grpc.health.v1` only, on the same runtime
//! (`tokio::runtime::Runtime::new`, `TOKIO_WORKER_THREADS` honoured), the same HTTP/2
//! settings and the same allocator as `portcullis serve`. Its calls/s is the transport's
//! ceiling on a core; `loadtest/perf.sh` gives every Portcullis figure as a ratio to it.
//!
//! Usage: `portcullis-reference [ADDR]` (default 127.0.0.1:50599).

use std::net::SocketAddr;

/// The allocator `portcullis serve` uses, so the ratio measures Portcullis's work only.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Duration;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:50599")
        .parse()?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let (health, service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("reference health server on {addr}");
        // The settings `portcullis serve` uses (server/src/serve.rs).
        Server::builder()
            .max_concurrent_streams(1024)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .http2_max_pending_accept_reset_streams(Some(64))
            .http2_max_header_list_size(16 << 10)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
