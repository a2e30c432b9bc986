//! R7: sharing the authentications the server observes. Checks record them in memory
//! (`Engine::observe_activity`); this task writes them to the store in one batch every
//! `activity_sync_interval` and takes in what other replicas wrote, and a last batch is
//! written at shutdown. A batch the store refuses stays pending for the next round.

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;

/// Syncs observed activity with the store every `every` until the task is aborted.
pub fn spawn(engine: Arc<Engine>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            match engine.sync_activity().await {
                Ok(()) if failing => {
                    tracing::info!("observed activity is being shared with the store again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(
                        "cannot share observed activity with the store: {e}; keeping it for the next attempt"
                    );
                    failing = true;
                }
                Err(_) => {}
            }
        }
    })
}

/// Writes what is still pending; called once the server has stopped taking calls.
pub async fn flush(engine: &Engine) {
    if let Err(e) = engine.sync_activity().await {
        tracing::error!("observed activity since the last sync is lost: {e}");
    }
}
