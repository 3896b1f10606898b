//! Start-up: binds the listeners, wires each to its protocol's router,
//! starts the background jobs beside them, and shuts both down in order
//! (stop accepting, drain, stop the jobs, flush the store).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, Initialised};
use crate::http::{Answer, Connection, Router};
use crate::server::{Listener, ServerMetrics};
use crate::{admin, est, jobs, portal, public};

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
    listeners: Vec<JoinHandle<()>>,
    jobs: Vec<JoinHandle<()>>,
}

/// A router that hands each request and the shared state to `handler`.
fn router<F, Fut>(app: &Arc<App>, handler: F) -> Arc<dyn Router>
where
    F: Fn(Arc<App>, hyper::Request<hyper::body::Incoming>, Arc<Connection>) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    let app = app.clone();
    Arc::new(move |req, conn| handler(app.clone(), req, conn))
}

impl RunningServer {
    /// Binds the listeners, starts serving and starts the background jobs.
    pub async fn start(init: Initialised) -> std::io::Result<RunningServer> {
        crate::http::prepare_spellings().await;
        let app = init.app;
        let public_socket = match init.public_listener {
            Some(bound) => {
                bound.set_nonblocking(true)?;
                TcpListener::from_std(bound)?
            }
            None => TcpListener::bind(app.config.revocation.http_listen).await?,
        };
        let est = Listener {
            name: "est",
            socket: TcpListener::bind(app.config.server.est_listen).await?,
            tls: Some(app.tls.clone()),
            router: router(&app, |app, req, conn| async move {
                est::handle(&app, &conn, req).await
            }),
        };
        let admin = Listener {
            name: "admin",
            socket: TcpListener::bind(app.config.server.admin_listen).await?,
            tls: Some(app.tls.clone()),
            // The portal's pages and the API share the listener (one origin,
            // so the session cookie serves both).
            router: router(&app, |app, req, conn| async move {
                if portal::owns(req.uri().path()) {
                    portal::handle(&app, &conn, req).await
                } else {
                    admin::handle(&app, &conn, req).await
                }
            }),
        };
        let public = Listener {
            name: "public",
            socket: public_socket,
            tls: None,
            router: router(&app, |app, req, conn| async move {
                public::handle(&app, conn.remote.ip(), req).await
            }),
        };
        let (est_addr, admin_addr, public_addr) = (
            est.socket.local_addr()?,
            admin.socket.local_addr()?,
            public.socket.local_addr()?,
        );
        let (tx, rx) = watch::channel(false);
        let metrics = ServerMetrics {
            requests: app.metrics.requests.clone(),
            connections_refused: app.metrics.connections_refused.clone(),
        };
        let listeners = [est, admin, public]
            .into_iter()
            .map(|l| {
                let serving =
                    crate::server::serve(l, app.config.server.clone(), metrics.clone(), rx.clone());
                tokio::spawn(serving)
            })
            .collect();
        let jobs = jobs::spawn_all(&app, &rx);
        Ok(RunningServer {
            est_addr,
            admin_addr,
            public_addr,
            app,
            shutdown: tx,
            listeners,
            jobs,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), stops the jobs and flushes the store; says whether that
    /// flush succeeded.
    pub async fn shutdown(self) -> Result<(), crate::store::StoreError> {
        let _ = self.shutdown.send(true);
        for t in self.listeners.into_iter().chain(self.jobs) {
            let _ = t.await;
        }
        self.app.store.flush().inspect_err(|e| {
            tracing::error!(error = %e, "flushing the store at shutdown failed; writes not yet committed are lost");
        })
    }
}
