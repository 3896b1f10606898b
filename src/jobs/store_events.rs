//! Follows the store's event feed, so that OCSP answers and the CRL served
//! by this node reflect revocations and CRLs made on any node (with
//! PostgreSQL, within the round trip of a `NOTIFY`).

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::app::App;
use crate::store::StoreEvent;

/// Applies each event to the revocation state until shutdown. A receiver
/// that fell behind has missed events, and resynchronises.
pub async fn run(
    app: Arc<App>,
    mut events: broadcast::Receiver<StoreEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => match e {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => StoreEvent::Resync,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        };
        let worker = app.clone();
        let followed =
            tokio::task::spawn_blocking(move || worker.revocation.follow(event, &worker.store))
                .await;
        match followed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, ?event, "following a store event"),
            Err(e) => tracing::error!(error = %e, "store event task"),
        }
    }
}
