//! Rate-limit upkeep: forgetting keys whose bucket has refilled.

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::App;

/// Forgets rate-limit keys whose bucket has refilled, so that memory follows
/// recent traffic.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        // Read each round: a reload may change it.
        let every = app.limits.load().evict_every();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let worker = app.clone();
        // Sweeping locks each shard of the maps in turn; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || worker.limits.load().evict_idle()).await;
        tracing::debug!(
            keys = app.limits.load().keys(),
            "rate-limit keys after eviction"
        );
    }
}
