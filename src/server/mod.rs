//! Listeners: TLS accept with a first-byte and a handshake timeout, a cap on
//! concurrent connections and one per source address, HTTP/1.1 with header
//! names in their registered spellings, head, idle and body timeouts, one log
//! line and one metric per request, and graceful shutdown.

mod activity;
mod sources;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use self::activity::{Activity, Expiry, Tracked};
use self::sources::{RefusalLog, Sources};
use crate::app::{App, Initialised};
use crate::auth::{CertRejection, ClientCert, ClientTrust};
use crate::model::Serial;
use crate::tls::ChannelBinding;
use crate::{admin, est};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// RFC 7030 EST.
    Est,
    /// Admin API and metrics.
    Admin,
    /// Plain HTTP for relying parties: CRL and OCSP.
    Public,
}

impl ListenerKind {
    fn name(self) -> &'static str {
        match self {
            ListenerKind::Est => "est",
            ListenerKind::Admin => "admin",
            ListenerKind::Public => "public",
        }
    }
}

/// One TLS connection, shared by the requests made over it.
pub struct Connection {
    /// The peer's address.
    pub remote: SocketAddr,
    /// Negotiated TLS version.
    pub tls_version: Option<rustls::ProtocolVersion>,
    peer_chain: Option<Vec<CertificateDer<'static>>>,
    verified: OnceLock<Result<ClientCert, CertRejection>>,
    fingerprint: Option<[u8; 32]>,
    channel_binding: ChannelBinding,
}

impl Connection {
    /// The client certificate's verdict, computed once per connection; `None`
    /// if the client sent no certificate.
    pub fn client_cert(&self, trust: &ClientTrust) -> Option<&Result<ClientCert, CertRejection>> {
        let chain = self.peer_chain.as_ref()?;
        Some(self.verified.get_or_init(|| trust.verify(chain)))
    }

    /// SHA-256 of the client certificate's DER, if the client sent one.
    pub fn cert_fingerprint(&self) -> Option<&[u8; 32]> {
        self.fingerprint.as_ref()
    }

    /// The connection's TLS channel binding, read once after the handshake,
    /// for proof-of-possession linking (RFC 7030 3.5).
    pub fn channel_binding(&self) -> &ChannelBinding {
        &self.channel_binding
    }
}

/// What a handler reports about a request for the log line and metrics.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    /// Endpoint name (bounded set, used as a metric label).
    pub endpoint: &'static str,
    /// EST label.
    pub label: Option<String>,
    /// Who called.
    pub principal: Option<String>,
    /// Serial of an issued certificate.
    pub serial: Option<Serial>,
}

/// Set on a request's extensions by the server; whoever reads the request
/// body to its end marks it (see [`BodyRead::mark`]), so that an answer sent
/// with the body left unread can say `Connection: close`.
#[derive(Debug, Clone, Default)]
pub struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// Notes that the body of the request with these extensions was read to its end.
    pub fn mark(extensions: &http::Extensions) {
        if let Some(b) = extensions.get::<BodyRead>() {
            b.0.store(true, Ordering::Relaxed);
        }
    }

    fn complete(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running estd.
pub struct RunningServer {
    /// Where the EST listener is bound.
    pub est_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// Where the plain-HTTP CRL/OCSP listener is bound.
    pub public_addr: SocketAddr,
    /// The shared state.
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Binds both listeners and starts serving.
    pub async fn start(init: Initialised) -> std::io::Result<RunningServer> {
        if REGISTERED_SPELLINGS.get().is_none() {
            let _ = REGISTERED_SPELLINGS.set(registered_spellings().await);
        }
        let app = init.app;
        let est = TcpListener::bind(app.config.server.est_listen).await?;
        let admin = TcpListener::bind(app.config.server.admin_listen).await?;
        let (tx, rx) = watch::channel(false);
        let acceptor = TlsAcceptor::from(init.tls);
        let est_addr = est.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let public = TcpListener::bind(app.config.revocation.http_listen).await?;
        let public_addr = public.local_addr()?;
        let tasks = vec![
            tokio::spawn(accept_loop(
                est,
                ListenerKind::Est,
                app.clone(),
                Some(acceptor.clone()),
                rx.clone(),
            )),
            tokio::spawn(accept_loop(
                admin,
                ListenerKind::Admin,
                app.clone(),
                Some(acceptor),
                rx.clone(),
            )),
            tokio::spawn(accept_loop(
                public,
                ListenerKind::Public,
                app.clone(),
                None,
                rx.clone(),
            )),
            tokio::spawn(crate::notify::run(app.clone(), rx.clone())),
            tokio::spawn(revocation_upkeep(app.clone(), rx.clone())),
            tokio::spawn(audit_retention(app.clone(), rx.clone())),
            tokio::spawn(rate_limit_upkeep(app.clone(), rx)),
        ];
        Ok(RunningServer {
            est_addr,
            admin_addr,
            public_addr,
            app,
            shutdown: tx,
            tasks,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period) and flushes the store; says whether that flush succeeded.
    pub async fn shutdown(self) -> Result<(), crate::store::StoreError> {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.app.store.flush().inspect_err(|e| {
            tracing::error!(error = %e, "flushing the store at shutdown failed; writes not yet committed are lost");
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    app: Arc<App>,
    acceptor: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = app.config.server.clone();
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let sources = Sources::new(cfg.max_connections_per_source);
    let mut refusals = RefusalLog::new(kind.name());
    // The slot of a connection refused for its source, kept for the next one.
    let mut spare = None;
    loop {
        // Past the cap, new connections wait in the kernel's queue; established ones go on.
        let permit = match spare.take() {
            Some(p) => p,
            None => tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            },
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // A source at its cap is closed at once: it never holds a slot, so it
        // cannot keep other clients waiting in the kernel's queue.
        let Some(source_slot) = sources.admit(remote.ip()) else {
            app.metrics
                .connections_refused
                .with_label_values(&[kind.name(), "per_source_cap"])
                .inc();
            refusals.note(remote.ip(), cfg.max_connections_per_source);
            drop(tcp);
            spare = Some(permit);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let cfg = cfg.clone();
        let watcher = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _source_slot = source_slot;
            // The handshake timeout counts from the accept, the first byte's within it.
            let handshake_deadline = tokio::time::Instant::now() + cfg.handshake_timeout();
            // A real client speaks at once (TLS: its ClientHello); a silent
            // connection is let go long before the handshake timeout.
            let first_byte = cfg.first_byte_timeout().min(cfg.handshake_timeout());
            let mut first = [0u8; 1];
            // Peeked, not read: the byte stays for the TLS or HTTP parser.
            match tokio::time::timeout(first_byte, tcp.peek(&mut first)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "connection failed before its first byte");
                    return;
                }
                Err(_) => {
                    app.metrics
                        .connections_refused
                        .with_label_values(&[kind.name(), "first_byte_timeout"])
                        .inc();
                    tracing::debug!(%remote, "no first byte in time; closing");
                    return;
                }
            }
            let Some(acceptor) = acceptor else {
                let conn = Arc::new(Connection {
                    remote,
                    tls_version: None,
                    peer_chain: None,
                    verified: OnceLock::new(),
                    fingerprint: None,
                    channel_binding: ChannelBinding::Unavailable,
                });
                serve_http(tcp, kind, app, conn, &cfg, watcher).await;
                return;
            };
            let tls = match tokio::time::timeout_at(handshake_deadline, acceptor.accept(tcp)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let (_, session) = tls.get_ref();
            let peer_chain: Option<Vec<CertificateDer<'static>>> = session
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
            // Once per connection: the rate-limit key of every request on it.
            let fingerprint = peer_chain.as_ref().and_then(|c| c.first()).map(|ee| {
                let mut fp = [0u8; 32];
                fp.copy_from_slice(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ee.as_ref()).as_ref(),
                );
                fp
            });
            let conn = Arc::new(Connection {
                remote,
                tls_version: session.protocol_version(),
                peer_chain,
                verified: OnceLock::new(),
                fingerprint,
                // Read now: the session moves into hyper below, out of the handlers' reach.
                channel_binding: ChannelBinding::of(session),
            });
            serve_http(tls, kind, app, conn, &cfg, watcher).await;
        });
    }
    drop(listener);
    // A slot kept from a refused connection is nobody's: give it back first.
    drop(spare);
    // Every connection task holds a slot until it has dropped everything it
    // holds, so having them all back means no request is still running.
    // Connections close themselves when idle, or at the end of the grace period.
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(cfg.shutdown_grace(), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = kind.name(),
            "grace period over; closing remaining connections"
        );
    }
}

/// Serves HTTP/1.1 on one connection, plain or TLS, until the client
/// closes it, a timeout closes it, or shutdown does.
async fn serve_http<I>(
    io: I,
    kind: ListenerKind,
    app: Arc<App>,
    conn: Arc<Connection>,
    cfg: &crate::config::ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let remote = conn.remote;
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let tracker = activity.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        let conn = conn.clone();
        let in_flight = tracker.begin();
        async move {
            let resp = handle(kind, app, conn, req).await;
            drop(in_flight);
            Ok::<_, Infallible>(resp)
        }
    });
    let (header_timeout, idle_timeout) = (cfg.header_read_timeout(), cfg.idle_timeout());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .title_case_headers(true)
        .keep_alive(true)
        // hyper's own head timer runs from the start of idleness and is not
        // reset by arriving bytes; the watchdog below closes sooner, so this
        // is only a backstop.
        .header_read_timeout(idle_timeout.max(header_timeout) + header_timeout)
        .max_header_size(cfg.max_header_bytes)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Once closing (idle, or shutting down), the connection gets this long to finish.
    let mut closing: Option<tokio::time::Instant> = None;
    if *shutdown.borrow() {
        connection.as_mut().graceful_shutdown();
        closing = Some(tokio::time::Instant::now() + cfg.shutdown_grace());
    }
    loop {
        let deadline = match closing {
            Some(at) => Some((at, Expiry::SlowHead)),
            None => activity.deadline(header_timeout, idle_timeout),
        };
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + cfg.shutdown_grace());
            }
            // A request finished: the deadline moves.
            _ = activity.finished(), if closing.is_none() => {}
            _ = tokio::time::sleep_until(deadline.map(|d| d.0).unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                // The state may have changed since the deadline was computed.
                let now = tokio::time::Instant::now();
                let current = match closing {
                    Some(at) => Some((at, Expiry::SlowHead)),
                    None => activity.deadline(header_timeout, idle_timeout),
                };
                match current {
                    Some((at, Expiry::Idle)) if at <= now => {
                        tracing::debug!(%remote, "closing an idle connection");
                        // hyper closes an idle connection at once; one whose
                        // next head just began gets the head timeout to finish.
                        connection.as_mut().graceful_shutdown();
                        closing = Some(now + header_timeout);
                    }
                    Some((at, Expiry::SlowHead)) if at <= now => {
                        tracing::debug!(%remote, "request head or shutdown timed out; dropping the connection");
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Forgets rate-limit keys whose bucket has refilled, so that memory follows
/// recent traffic.
async fn rate_limit_upkeep(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(app.config.rate_limit.evict_interval_secs);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let worker = app.clone();
        // Sweeping locks each shard of the maps in turn; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || worker.limits.evict_idle()).await;
        tracing::debug!(keys = app.limits.keys(), "rate-limit keys after eviction");
    }
}

/// Audit records pruned in one go; between batches other writers get their turn.
const AUDIT_PRUNE_BATCH: usize = 1000;

/// How often the audit log is pruned (and once at start).
const AUDIT_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes audit records older than `store.audit_retention_days`, in bounded
/// batches off the async threads, so that a large backlog never stalls the server.
async fn audit_retention(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
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

/// Signs the CRL again before it goes stale, and renews the OCSP responder
/// certificate before it expires.
async fn revocation_upkeep(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
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
                        .regenerate_crl(&worker.ca, &worker.store, &worker.metrics)?;
                }
                let certs_dir = worker.config.paths.certs_dir.clone();
                if let Some(issued) = worker
                    .revocation
                    .renew_responder_if_due(&certs_dir, &worker.ca)?
                {
                    crate::app::record_infrastructure(
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

/// hyper writes header names in Title-Case (`title_case_headers`), which is
/// the registered spelling of every header estd sends but one:
/// `WWW-Authenticate` (RFC 9110 11.6.1) would go out as `Www-Authenticate`,
/// and clients that match names byte for byte (libest) then miss the
/// challenge. hyper writes other spellings only from its `HeaderCaseMap`
/// response extension, which is private and made only by its own parser
/// (`preserve_header_case`). So one is made once, by letting hyper's client
/// parse a response that spells the names as registered; its extensions are
/// then copied onto each answer that carries such a header.
static REGISTERED_SPELLINGS: OnceLock<http::Extensions> = OnceLock::new();

/// The headers whose Title-Case form is not their registered spelling.
const RESPELLED: &[header::HeaderName] = &[header::WWW_AUTHENTICATE];

async fn registered_spellings() -> http::Extensions {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Twice: an answer may carry two challenges (each value is one line).
    const CANNED: &[u8] =
        b"HTTP/1.1 204 No Content\r\nWWW-Authenticate: x\r\nWWW-Authenticate: x\r\n\r\n";
    let (client, mut server) = tokio::io::duplex(4096);
    let answer = async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match server.read(&mut buf).await? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        server.write_all(CANNED).await?;
        Ok::<_, std::io::Error>(server)
    };
    let ask = async move {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake::<_, Full<Bytes>>(TokioIo::new(client))
            .await?;
        tokio::spawn(conn);
        let req = Request::get("/")
            .header(header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(std::io::Error::other)?;
        let resp = sender.send_request(req).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(resp.into_parts().0.extensions)
    };
    match tokio::join!(answer, ask) {
        (Ok(_), Ok(extensions)) if !extensions.is_empty() => extensions,
        (a, b) => {
            tracing::warn!(
                answer = ?a.err(),
                parse = ?b.err(),
                "cannot prepare registered header spellings; WWW-Authenticate goes out as Www-Authenticate"
            );
            http::Extensions::new()
        }
    }
}

async fn handle(
    kind: ListenerKind,
    app: Arc<App>,
    conn: Arc<Connection>,
    mut req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body_read = BodyRead::default();
    let body_expected = !req.body().is_end_stream();
    req.extensions_mut().insert(body_read.clone());
    let mut resp = match kind {
        ListenerKind::Est => est::handle(&app, &conn, req).await,
        ListenerKind::Admin => admin::handle(&app, &conn, req).await,
        ListenerKind::Public => crate::public::handle(&app, conn.remote.ip(), req).await,
    };
    // Answered with the body unread (refused early: 413, 415, 401, 429...):
    // hyper closes such a connection rather than read on, so say so.
    if body_expected && !body_read.complete() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if RESPELLED.iter().any(|h| resp.headers().contains_key(h)) {
        if let Some(spellings) = REGISTERED_SPELLINGS.get() {
            resp.extensions_mut().extend(spellings.clone());
        }
    }
    let log = resp
        .extensions_mut()
        .remove::<RequestLog>()
        .unwrap_or_default();
    let status = resp.status();
    app.metrics
        .requests
        .with_label_values(&[kind.name(), log.endpoint, status.as_str()])
        .inc();
    tracing::info!(
        listener = kind.name(),
        remote = %conn.remote,
        method = %method,
        path = %crate::clip::clip(&path),
        label = log.label.as_deref().unwrap_or("-"),
        status = status.as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        principal = %crate::clip::clip(log.principal.as_deref().unwrap_or("-")),
        serial = %log.serial.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        "request"
    );
    resp
}
