//! Listeners: TLS accept with a first-byte and a handshake timeout, a cap on
//! concurrent connections and one per source address, HTTP/1.1 with header
//! names in their registered spellings, head, idle and body timeouts, and
//! graceful drain. Each listener hands its requests to a [`Router`]; the
//! server knows no protocol and starts no background job (see `crate::run`
//! for the wiring, `crate::jobs` for the jobs).

mod activity;
mod connection;
mod sources;

use std::sync::Arc;

use prometheus::IntCounterVec;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use self::sources::{RefusalLog, Sources};
use crate::config::ServerConfig;
use crate::http::Router;

/// One listener: its socket, its TLS (none for plain HTTP) and its router.
pub struct Listener {
    /// The listener's name in logs and metric labels (`est`, `admin`, `public`).
    pub name: &'static str,
    /// The bound socket.
    pub socket: TcpListener,
    /// TLS for every connection, or `None` for plain HTTP.
    pub tls: Option<Arc<crate::tls::LiveTls>>,
    /// Answers its requests.
    pub router: Arc<dyn Router>,
}

/// The counters the server reports into.
#[derive(Clone)]
pub struct ServerMetrics {
    /// `requests{listener, endpoint, status}`.
    pub requests: IntCounterVec,
    /// `connections_refused{listener, reason}`.
    pub connections_refused: IntCounterVec,
}

/// What every connection task of one listener shares.
struct Shared {
    name: &'static str,
    tls: Option<Arc<crate::tls::LiveTls>>,
    router: Arc<dyn Router>,
    cfg: ServerConfig,
    metrics: ServerMetrics,
}

impl Shared {
    fn refused(&self, reason: &str) {
        self.metrics
            .connections_refused
            .with_label_values(&[self.name, reason])
            .inc();
    }
}

/// Serves `listener` until `shutdown` turns `true`, then lets its
/// connections finish within the grace period.
pub async fn serve(
    listener: Listener,
    cfg: ServerConfig,
    metrics: ServerMetrics,
    shutdown: watch::Receiver<bool>,
) {
    let Listener {
        name,
        socket,
        tls,
        router,
    } = listener;
    let shared = Arc::new(Shared {
        name,
        tls,
        router,
        cfg,
        metrics,
    });
    let slots = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let spare = accept_loop(&socket, &shared, &slots, shutdown).await;
    drop(socket);
    drain(&shared, slots, spare).await;
}

/// Accepts connections until shutdown; returns the slot kept from a refused
/// connection, if any.
async fn accept_loop(
    socket: &TcpListener,
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    let sources = Sources::new(shared.cfg.max_connections_per_source);
    let mut refusals = RefusalLog::new(shared.name);
    // The slot of a connection refused for its source, kept for the next one.
    let mut spare = None;
    loop {
        // Past the cap, new connections wait in the kernel's queue; established ones go on.
        let permit = match spare.take() {
            Some(p) => p,
            None => tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return None },
                _ = shutdown.changed() => return None,
            },
        };
        let Some((tcp, remote)) = accept(socket, &mut shutdown).await else {
            return Some(permit);
        };
        // A source at its cap is closed at once: it never holds a slot, so it
        // cannot keep other clients waiting in the kernel's queue.
        let Some(source_slot) = sources.admit(remote.ip()) else {
            shared.refused("per_source_cap");
            refusals.note(remote.ip(), shared.cfg.max_connections_per_source);
            drop(tcp);
            spare = Some(permit);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let task = connection::run(tcp, remote, shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _held = (permit, source_slot);
            task.await;
        });
    }
}

/// The next connection, or `None` at shutdown. A failed accept (out of file
/// descriptors, say) is retried after a short pause.
async fn accept(
    socket: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            r = socket.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return None,
        }
    }
}

/// Waits for the listener's connections to finish, up to the grace period.
async fn drain(shared: &Shared, slots: Arc<Semaphore>, spare: Option<OwnedSemaphorePermit>) {
    // A slot kept from a refused connection is nobody's: give it back first.
    drop(spare);
    // Every connection task holds a slot until it has dropped everything it
    // holds, so having them all back means no request is still running.
    // Connections close themselves when idle, or at the end of the grace period.
    let all = u32::try_from(shared.cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(shared.cfg.shutdown_grace(), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = shared.name,
            "grace period over; closing remaining connections"
        );
    }
}
