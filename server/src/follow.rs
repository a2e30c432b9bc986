//! Following a shared store: every replica applies what the others commit. A `NOTIFY`
//! wakes it at once; a poll (default every 5 s) catches what a lost notification missed.
//! While the store cannot be reached the replica keeps serving what it has, reports
//! NOT_SERVING for `portcullis.v1.Store`, retries with backoff, and replays everything it
//! missed before reporting SERVING again. Checks stop when the staleness bound passes
//! (see `Engine::is_stale`).

use crate::engine::Engine;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The health service name that reports the store's reachability.
pub const STORE_SERVICE: &str = "portcullis.v1.Store";

/// Follows the engine's store until the task is dropped.
pub fn spawn(engine: Arc<Engine>, poll: Duration, health: HealthReporter, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let Some(nudges) = engine.store().nudges() else { return };
        let store = engine.store().describe();
        let mut healthy = true;
        let mut backoff = Duration::from_millis(50);
        loop {
            match engine.catch_up().await {
                Ok(()) => {
                    if !healthy {
                        tracing::info!(%store, version = engine.version(), overlay_seq = engine.overlay_seq(), "store reachable again; caught up");
                        health.set_service_status(STORE_SERVICE, ServingStatus::Serving).await;
                        healthy = true;
                    }
                    metrics.store_up(true);
                    backoff = Duration::from_millis(50);
                    tokio::select! {
                        () = nudges.notified() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                }
                Err(e) => {
                    if healthy {
                        tracing::error!(%store, "cannot follow the store: {e}; serving version {} until it is back", engine.version());
                        health
                            .set_service_status(STORE_SERVICE, ServingStatus::NotServing)
                            .await;
                        healthy = false;
                    }
                    metrics.store_up(false);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(poll);
                }
            }
        }
    });
}
