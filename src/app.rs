//! The shared state behind every request, and how it is assembled at start-up:
//! CA material, the store, demo data, trust anchors and TLS configs.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::auth::{ClientTrust, TrustError};
use crate::ca::{bootstrap, layout};
use crate::ca::{CaError, CaSet};
use crate::config::Config;
use crate::files::FileError;
use crate::metrics::Metrics;
use crate::model::now_unix;
use crate::revocation::Revocation;
use crate::seed::{self, DemoIdentity};
use crate::service::infrastructure::{self, Refreshed};
use crate::store::{Store, StoreError};
use crate::tls::LiveTls;

/// Everything a request handler may use. Cheap to share behind an `Arc`.
pub struct App {
    /// The configuration in force.
    pub config: Config,
    /// The issuing CA, every generation.
    pub ca: Arc<CaSet>,
    /// The store (the engine behind it is the store module's business).
    pub store: Arc<dyn Store>,
    /// Client-certificate trust (replaced whole by a reload).
    pub trust: ArcSwap<ClientTrust>,
    /// The TLS settings of the EST and admin listeners, and estd's identity.
    pub tls: Arc<LiveTls>,
    /// The configuration most recently accepted, at start or by a reload:
    /// its live sections (`[tls]`, `[smtp]`, `[rate_limit]`, `[log]
    /// filter`) are in force; the rest is as `config` (see `crate::reload`).
    pub live: ArcSwap<Config>,
    /// Metrics.
    pub metrics: Metrics,
    /// `/cacerts` body, encoded once by the EST handler that serves it.
    pub cacerts_body: std::sync::OnceLock<Bytes>,
    /// CRL and OCSP.
    pub revocation: Revocation,
    /// Request rate limits on the EST and plain-HTTP listeners (replaced
    /// whole by a reload).
    pub limits: ArcSwap<crate::ratelimit::RateLimits>,
    /// How many OCSP requests are answered at once.
    pub ocsp_gate: crate::revocation::OcspGate,
}

/// Errors at start-up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The configuration, as far as it is settled at start (URLs that follow
    /// a listener bound on port 0).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Binding the public listener early, to learn its port.
    #[error("binding [revocation] http_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// CA material.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A file or folder beside the CA material (the data folder, the admin token).
    #[error(transparent)]
    File(#[from] FileError),
    /// The first-start data (the operator's admin token, the demo data).
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// estd's TLS certificate.
    #[error(transparent)]
    Identity(#[from] crate::service::infrastructure::IdentityError),
    /// Trust anchors.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Metrics registration.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Encoding.
    #[error("encoding: {0}")]
    Der(#[from] der::Error),
    /// CRL or OCSP material.
    #[error(transparent)]
    Revocation(#[from] crate::revocation::RevocationError),
    /// Rate limits.
    #[error(transparent)]
    RateLimit(#[from] crate::ratelimit::QuotaError),
}

/// The result of initialisation.
pub struct Initialised {
    /// The shared state.
    pub app: Arc<App>,
    /// Whether the CA was created now.
    pub created_ca: bool,
    /// The demo identity, if demo data is enabled.
    pub demo: Option<DemoIdentity>,
    /// Where the operator's admin token was written on first start.
    pub admin_token: PathBuf,
    /// The public listener, bound already when `[revocation] http_listen`
    /// asks for port 0 and the URLs in certificates follow it: the port had
    /// to be known before the CA was built.
    pub public_listener: Option<std::net::TcpListener>,
}

impl App {
    /// Loads or creates CA material and the store, seeds the demo data, and
    /// prepares everything that does not change per request.
    pub fn init(mut config: Config) -> Result<Initialised, InitError> {
        let public_listener = bind_public_if_needed(&mut config)?;
        let certs_dir: PathBuf = config.paths.certs_dir.clone();
        let material = bootstrap::load_or_create_ca(&certs_dir, &config.ca)?;
        let ca = Arc::new(crate::ca::rollover::load_generations(
            &certs_dir,
            &config.ca,
            material.ca,
        )?);
        crate::files::create_dir_all(&config.paths.data_dir)?;
        let store = crate::store::open(&config.store, &config.paths.data_dir)?;

        let (identity, loaded_from) =
            infrastructure::initial(&store, ca.active(), &config.tls, &certs_dir)?;
        let (revocation, ocsp_issued) =
            Revocation::init(&config.revocation, &certs_dir, &ca, &store)?;
        for issued in &ocsp_issued {
            infrastructure::record_own_certificate(
                &store,
                issued,
                "O=estd, CN=estd OCSP Responder",
                "estd-ocsp-signer",
            )?;
        }
        let admin_token = seed::ensure_operator_token(&config, &store)?;
        let demo = if config.demo.enabled {
            Some(seed::ensure_demo(&config, ca.active(), &store)?)
        } else {
            None
        };
        store.flush()?;

        let trust = ClientTrust::new(&ca, &config.tls.client_anchors)?;
        let tls = Arc::new(LiveTls::new(
            identity,
            loaded_from,
            trust.hints().to_vec(),
            config.tls.min_version,
        )?);
        // A certificate of estd's own that nears expiry or names other names
        // is renewed before the first client sees it.
        match infrastructure::refresh(&store, ca.active(), &tls, &config.tls, &certs_dir)? {
            Refreshed::Unchanged => {}
            done => tracing::info!(?done, "estd's TLS certificate"),
        }
        let metrics = Metrics::new()?;
        metrics.stored.set(store.cert_count() as i64);
        if revocation.crl_due(now_unix()) {
            revocation.regenerate_crl(&store, &metrics)?;
            store.flush()?;
        }
        metrics
            .crl_size_bytes
            .set(revocation.current_crl().der.len() as i64);
        let limits = crate::ratelimit::RateLimits::new(&config.rate_limit)?;
        let ocsp_gate =
            crate::revocation::OcspGate::new(config.revocation.ocsp_signing_concurrency);
        let app = Arc::new(App {
            limits: ArcSwap::from_pointee(limits),
            ocsp_gate,
            tls,
            live: ArcSwap::from_pointee(config.clone()),
            config,
            ca,
            store,
            trust: ArcSwap::from_pointee(trust),
            metrics,
            cacerts_body: std::sync::OnceLock::new(),
            revocation,
        });
        Ok(Initialised {
            app,
            created_ca: material.created,
            demo,
            admin_token,
            public_listener,
        })
    }

    /// The handles a unit of work may use.
    pub fn services(&self) -> crate::service::Services<'_> {
        crate::service::Services {
            store: &self.store,
            ca: &self.ca,
            revocation: &self.revocation,
            config: &self.config,
            metrics: &self.metrics,
        }
    }

    /// Path of a file under `certs/`.
    pub fn certs_path(&self, file: &str) -> PathBuf {
        self.config.paths.certs_dir.join(file)
    }
}

/// Binds the public listener now when certificates' URLs follow it and its
/// configured port is 0: only the bound socket knows the port.
fn bind_public_if_needed(config: &mut Config) -> Result<Option<std::net::TcpListener>, InitError> {
    let addr = config.revocation.http_listen;
    if addr.port() != 0 || !config.derives_public_urls() {
        return Ok(None);
    }
    let bind_err = |source| InitError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    let port = listener.local_addr().map_err(bind_err)?.port();
    config.resolve_public_urls(port)?;
    Ok(Some(listener))
}

/// The trust anchor file clients should pin.
pub fn trust_anchor_file(config: &Config) -> PathBuf {
    config.paths.certs_dir.join(layout::ROOT_CERT)
}
