//! Revocation upkeep: the CRL before it goes stale, the OCSP responder
//! certificate before it expires.

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::App;

/// Signs the CRL again before it goes stale, and renews the OCSP responder
/// certificate before it expires.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
        let worker = app.clone();
        let result = tokio::task::spawn_blocking(
            move || -> Result<(), crate::revocation::RevocationError> {
                let now = crate::model::now_unix();
                if worker.revocation.crl_due(now) {
                    worker
                        .revocation
                        .regenerate_crl(&worker.store, &worker.metrics)?;
                }
                let certs_dir = worker.config.paths.certs_dir.clone();
                for issued in worker.revocation.renew_responder_if_due(&certs_dir)? {
                    crate::service::infrastructure::record_own_certificate(
                        &worker.store,
                        &issued,
                        "O=estd, CN=estd OCSP Responder",
                        "estd-ocsp-signer",
                    )?;
                }
                Ok(())
            },
        )
        .await;
        match result {
            Ok(Ok(())) => {
                if let Err(e) = app.store.durable().await {
                    tracing::error!(error = %e, "committing revocation upkeep");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "revocation upkeep"),
            Err(e) => tracing::error!(error = %e, "revocation upkeep task"),
        }
    }
}
