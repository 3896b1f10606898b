//! estd's own certificates: renews its TLS certificate (or loads the
//! operator's changed files) and reports when each certificate it depends
//! on expires.

use std::sync::Arc;
use std::time::Duration;

use der::Decode;
use tokio::sync::watch;

use crate::app::App;
use crate::service::infrastructure::{self, Refreshed};

/// Every `[tls] check_interval_secs` (read each round: a reload may change
/// it), looks at the TLS identity and sets the expiry metrics.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    // The last failure logged: the same one (files the operator is still
    // writing, say) is not logged again every round.
    let mut last_failure: Option<String> = None;
    loop {
        record_expiries(&app);
        let every = Duration::from_secs(app.live.load().tls.check_interval_secs.max(1));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let worker = app.clone();
        // Issuing signs and writes files; reading the operator's files is I/O.
        match tokio::task::spawn_blocking(move || refresh_tls(&worker)).await {
            Ok(Ok(())) => last_failure = None,
            Ok(Err(e)) => {
                if last_failure.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "the TLS certificate could not be renewed or reloaded; the one in force stays");
                }
                last_failure = Some(e);
            }
            Err(e) => tracing::error!(error = %e, "the TLS certificate check stopped"),
        }
    }
}

/// One look at the TLS identity; what changed is logged, a failure returned.
fn refresh_tls(app: &App) -> Result<(), String> {
    let live = app.live.load();
    match infrastructure::refresh(
        &app.store,
        app.ca.active(),
        &app.tls,
        &live.tls,
        &app.config.paths.certs_dir,
    ) {
        Ok(Refreshed::Unchanged) => {}
        Ok(Refreshed::Renewed { reason, not_after }) => {
            tracing::info!(
                reason,
                not_after,
                "estd issued itself a new TLS certificate; new connections get it"
            );
        }
        Ok(Refreshed::Reloaded { not_after }) => {
            tracing::info!(
                not_after,
                "the TLS certificate files changed; new connections get the new certificate"
            );
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

/// Sets `estd_certificate_expiry_timestamp_seconds` for the TLS, OCSP
/// signer and CA certificates, and each CRL's nextUpdate.
pub fn record_expiries(app: &App) {
    let set = |what: &str, generation: &str, at: u64| {
        app.metrics
            .expiries
            .with_label_values(&[what, generation])
            .set(i64::try_from(at).unwrap_or(i64::MAX));
    };
    if let Some(at) = infrastructure::tls_not_after(&app.tls) {
        set("tls", "", at);
    }
    for g in app.ca.generations() {
        let n = g.number.to_string();
        set("ca_issuing", &n, g.ca.not_after());
        if let Ok(root) = x509_cert::Certificate::from_der(g.ca.root_der()) {
            let at = root.tbs_certificate.validity.not_after.to_unix_duration();
            set("ca_root", &n, at.as_secs());
        }
    }
    for (n, responder, crl_next) in app.revocation.expiries() {
        set("ocsp_signer", &n.to_string(), responder);
        set("crl_next_update", &n.to_string(), crl_next);
    }
}
