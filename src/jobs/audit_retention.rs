//! Audit retention: pruning audit records past `store.audit_retention_days`.

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::App;

/// Audit records pruned in one go; between batches other writers get their turn.
const AUDIT_PRUNE_BATCH: usize = 1000;

/// How often the audit log is pruned (and once at start).
const AUDIT_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes audit records older than `store.audit_retention_days`, in bounded
/// batches off the async threads, so that a large backlog never stalls the server.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let days = u64::from(app.config.store.audit_retention_days);
    if days == 0 {
        return;
    }
    loop {
        let mut pruned = 0;
        loop {
            let cutoff_ms = crate::model::now_unix()
                .saturating_sub(days * 86_400)
                .saturating_mul(1000);
            let worker = app.clone();
            let batch = tokio::task::spawn_blocking(move || {
                worker.store.prune_audit(cutoff_ms, AUDIT_PRUNE_BATCH)
            })
            .await;
            match batch {
                Ok(Ok(n)) => {
                    pruned += n;
                    if n < AUDIT_PRUNE_BATCH {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "pruning the audit log");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit pruning task");
                    break;
                }
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if pruned > 0 {
            // Durable with this commit; if it is lost, the next round prunes again.
            if let Err(e) = app.store.durable().await {
                tracing::warn!(error = %e, "committing the pruned audit log");
            }
            tracing::info!(pruned, days, "audit records past their retention pruned");
        }
        tokio::select! {
            _ = tokio::time::sleep(AUDIT_PRUNE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}
