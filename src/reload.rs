//! Reloading the configuration while estd serves (SIGHUP).
//!
//! Some settings take effect live: `[tls]` (estd's certificate and server
//! names, the client anchors, the oldest version), `[rate_limit]`, `[smtp]`
//! and `[log] filter`. A change to any other section is reported as needing
//! a restart and is not applied. A new configuration that does not load, or
//! whose live parts cannot be built (an anchor file that is not there, an
//! impossible quota, a log filter that does not parse), is refused whole:
//! everything in force stays.

use std::sync::Arc;

use crate::app::App;
use crate::auth::{ClientTrust, TrustError};
use crate::config::{Config, ConfigError};
use crate::ratelimit::{QuotaError, RateLimits};
use crate::service::infrastructure::{self, IdentityError, Refreshed};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `[rate_limit]` makes no valid quota.
    #[error(transparent)]
    RateLimit(#[from] QuotaError),
    /// `[tls] client_anchors` cannot be read.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The TLS settings cannot be built.
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
    /// estd's TLS certificate cannot be issued or loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// `[log] filter` does not parse.
    #[error("log.filter: {0}")]
    LogFilter(String),
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The sections changed and now in force.
    pub applied: Vec<&'static str>,
    /// The sections changed that take effect only at the next start.
    pub needs_restart: Vec<&'static str>,
    /// What happened to estd's TLS certificate.
    pub tls_identity: Option<Refreshed>,
}

/// Applies the live parts of `new` (read from the file estd started with)
/// and names the rest. `public_port` is the plain-HTTP listener's bound
/// port, which URLs that follow it were filled from at start.
/// `set_log_filter` installs a new filter in the log subscriber.
pub fn reload(
    app: &App,
    mut new: Config,
    public_port: u16,
    set_log_filter: &dyn Fn(&str) -> Result<(), String>,
) -> Result<ReloadReport, ReloadError> {
    if new.revocation.http_listen.port() == 0 && new.derives_public_urls() {
        new.resolve_public_urls(public_port)?;
    }
    let old: Arc<Config> = app.live.load_full();
    let mut report = ReloadReport::default();

    // Everything that can fail is built before anything is swapped.
    let limits = (new.rate_limit != old.rate_limit)
        .then(|| RateLimits::new(&new.rate_limit))
        .transpose()?;
    let client_side_changed = new.tls.client_anchors != old.tls.client_anchors
        || new.tls.min_version != old.tls.min_version;
    let trust = client_side_changed
        .then(|| ClientTrust::new(&app.ca, &new.tls.client_anchors))
        .transpose()?;
    let filter_changed = new.log.filter != old.log.filter;
    if filter_changed {
        tracing_subscriber::EnvFilter::try_new(&new.log.filter)
            .map_err(|e| ReloadError::LogFilter(e.to_string()))?;
    }
    // Issuing or loading the identity has effects (a certificate, files):
    // last of the things that can fail, and only for a new config.
    let identity = infrastructure::refresh(
        &app.store,
        app.ca.active(),
        &app.tls,
        &new.tls,
        &app.config.paths.certs_dir,
    )?;

    if let Some(trust) = trust {
        app.tls
            .set_client_settings(trust.hints().to_vec(), new.tls.min_version)?;
        app.trust.store(Arc::new(trust));
    }
    if let Some(limits) = limits {
        app.limits.store(Arc::new(limits));
        report.applied.push("rate_limit");
    }
    if new.tls != old.tls || identity != Refreshed::Unchanged {
        report.applied.push("tls");
    }
    if new.smtp != old.smtp {
        report.applied.push("smtp");
    }
    if filter_changed {
        // Checked above; a failure here is the subscriber's (e.g. RUST_LOG
        // governs), and the filter in force stays.
        match set_log_filter(&new.log.filter) {
            Ok(()) => report.applied.push("log.filter"),
            Err(e) => tracing::warn!(reason = %e, "log.filter not applied"),
        }
    }
    report.tls_identity = Some(identity);

    // What is held from start: the in-force config keeps the old value,
    // so the section stays reported until a restart.
    let mut accepted = (*old).clone();
    accepted.tls = new.tls.clone();
    accepted.smtp = new.smtp.clone();
    accepted.rate_limit = new.rate_limit.clone();
    accepted.log.filter = new.log.filter.clone();
    report.needs_restart = restart_sections(&accepted, &new);
    app.live.store(Arc::new(accepted));
    Ok(report)
}

/// The sections in which `new` differs from `in_force`, by name.
fn restart_sections(in_force: &Config, new: &Config) -> Vec<&'static str> {
    let Config {
        server,
        paths,
        store,
        ca,
        tls: _,
        demo,
        revocation,
        orders,
        admin_tokens,
        smtp: _,
        notices,
        email_validation,
        people,
        log,
        rate_limit: _,
        certificate_policies,
    } = in_force;
    let mut changed = Vec::new();
    let mut note = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    note("server", *server != new.server);
    note("paths", *paths != new.paths);
    note("store", *store != new.store);
    note("ca", *ca != new.ca);
    note("demo", *demo != new.demo);
    note("revocation", *revocation != new.revocation);
    note("orders", *orders != new.orders);
    note("admin_tokens", *admin_tokens != new.admin_tokens);
    note("notices", *notices != new.notices);
    note(
        "email_validation",
        *email_validation != new.email_validation,
    );
    note("people", *people != new.people);
    note("log.format", log.format != new.log.format);
    note(
        "certificate_policies",
        *certificate_policies != new.certificate_policies,
    );
    changed
}
