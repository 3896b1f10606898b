//! One accepted connection: the first byte, the TLS handshake, then HTTP/1.1
//! under the activity watchdog until the client, a timeout or shutdown ends it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::activity::{Activity, Expiry, Tracked};
use super::Shared;
use crate::config::ServerConfig;
use crate::http::Connection;

/// Serves one accepted connection to its end.
pub(super) async fn run(
    tcp: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    // The handshake timeout counts from the accept, the first byte's within it.
    let handshake_deadline = Instant::now() + shared.cfg.handshake_timeout();
    if !first_byte(&tcp, remote, &shared).await {
        return;
    }
    let Some(acceptor) = shared.tls.as_ref().map(|live| live.acceptor()) else {
        let conn = Arc::new(Connection::plain(remote));
        serve_http(tcp, shared, conn, shutdown).await;
        return;
    };
    let tls = match tokio::time::timeout_at(handshake_deadline, acceptor.accept(tcp)).await {
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
    // Read now: the session moves into hyper below, out of the handlers' reach.
    let conn = Arc::new(Connection::tls(remote, tls.get_ref().1));
    serve_http(tls, shared, conn, shutdown).await;
}

/// Waits for the client's first byte; `false` if it did not come in time.
async fn first_byte(tcp: &TcpStream, remote: SocketAddr, shared: &Shared) -> bool {
    // A real client speaks at once (TLS: its ClientHello); a silent
    // connection is let go long before the handshake timeout.
    let wait = shared
        .cfg
        .first_byte_timeout()
        .min(shared.cfg.handshake_timeout());
    let mut first = [0u8; 1];
    // Peeked, not read: the byte stays for the TLS or HTTP parser.
    match tokio::time::timeout(wait, tcp.peek(&mut first)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "connection failed before its first byte");
            false
        }
        Err(_) => {
            shared.refused("first_byte_timeout");
            tracing::debug!(%remote, "no first byte in time; closing");
            false
        }
    }
}

/// hyper's HTTP/1.1 settings for one connection.
fn http_builder(cfg: &ServerConfig) -> http1::Builder {
    let (header_timeout, idle_timeout) = (cfg.header_read_timeout(), cfg.idle_timeout());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .title_case_headers(true)
        .keep_alive(true)
        // hyper's own head timer runs from the start of idleness and is not
        // reset by arriving bytes; the watchdog closes sooner, so this is
        // only a backstop.
        .header_read_timeout(idle_timeout.max(header_timeout) + header_timeout)
        .max_header_size(cfg.max_header_bytes)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    builder
}

/// Serves HTTP/1.1 on one connection, plain or TLS, until the client
/// closes it, a timeout closes it, or shutdown does.
async fn serve_http<I>(
    io: I,
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let remote = conn.remote;
    let closing_conn = conn.clone();
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let mut watchdog = Watchdog::new(activity.clone(), &shared.cfg);
    let builder = http_builder(&shared.cfg);
    let tracker = activity.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let conn = conn.clone();
        let in_flight = tracker.begin();
        // Boxed, so that the connection is Unpin and its I/O can be taken
        // back when hyper is done (see `close`).
        Box::pin(async move {
            let resp = crate::http::answer(
                shared.name,
                &shared.metrics.requests,
                shared.router.as_ref(),
                conn,
                req,
            )
            .await;
            drop(in_flight);
            Ok::<_, Infallible>(resp)
        })
    });
    let mut connection = builder.serve_connection(io, service);
    if *shutdown.borrow() {
        Pin::new(&mut connection).graceful_shutdown();
        watchdog.shutting_down();
    }
    loop {
        let deadline = watchdog.deadline();
        tokio::select! {
            r = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                match r {
                    Ok(()) => close(connection.into_parts().io.into_inner(), &closing_conn).await,
                    Err(e) => tracing::debug!(%remote, error = %e, "connection ended with an error"),
                }
                return;
            }
            _ = shutdown.changed(), if !watchdog.closing() => {
                Pin::new(&mut connection).graceful_shutdown();
                watchdog.shutting_down();
            }
            // A request finished: the deadline moves.
            _ = activity.finished(), if !watchdog.closing() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                match watchdog.expired() {
                    Verdict::Wait => {}
                    Verdict::CloseIdle => {
                        tracing::debug!(%remote, "closing an idle connection");
                        Pin::new(&mut connection).graceful_shutdown();
                    }
                    Verdict::Drop => {
                        tracing::debug!(%remote, "request head or shutdown timed out; dropping the connection");
                        return;
                    }
                }
            }
        }
    }
}

/// Most of an unread request body read away before a connection closes.
const LINGER_BYTES: u64 = 1024 * 1024;

/// Longest that reading away takes, and longest the close itself may wait
/// for a slow peer.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes a connection hyper is done with: TLS close_notify and the TCP
/// write side. When an answer went out with its request body unread (an
/// early 413, 415 or 401), the rest of that body is then read and thrown
/// away, up to [`LINGER_BYTES`] or [`LINGER_TIME`]: closing a socket with
/// unread data makes the kernel send a reset, and a client still sending
/// its body (curl, for one) then fails with a broken pipe instead of
/// reading the answer it was sent.
async fn close<I>(mut io: I, conn: &Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let remote = conn.remote;
    let deadline = Instant::now() + LINGER_TIME;
    if let Err(e) = tokio::time::timeout_at(deadline, io.shutdown())
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
    {
        tracing::debug!(%remote, error = %e, "closing the connection failed");
        return;
    }
    if !conn.body_left_unread() {
        return;
    }
    let mut rest = (&mut io).take(LINGER_BYTES);
    match tokio::time::timeout_at(deadline, tokio::io::copy(&mut rest, &mut tokio::io::sink()))
        .await
    {
        Ok(Ok(n)) => tracing::debug!(%remote, bytes = n, "read away the unread request body"),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "reading away the unread request body failed")
        }
        Err(_) => tracing::debug!(%remote, "reading away the unread request body took too long"),
    }
}

/// What the watchdog decides when its deadline passes.
enum Verdict {
    /// The state changed since the deadline was computed: nothing is due.
    Wait,
    /// Idle too long: close politely.
    CloseIdle,
    /// A head too slow, or the closing time over: drop the connection.
    Drop,
}

/// The timeouts hyper does not offer (see [`super::activity`]), and the
/// time a closing connection has left.
struct Watchdog {
    activity: Arc<Activity>,
    header_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
    grace: std::time::Duration,
    /// Once closing (idle, or shutting down), the connection gets until then to finish.
    closing: Option<Instant>,
}

impl Watchdog {
    fn new(activity: Arc<Activity>, cfg: &ServerConfig) -> Watchdog {
        Watchdog {
            activity,
            header_timeout: cfg.header_read_timeout(),
            idle_timeout: cfg.idle_timeout(),
            grace: cfg.shutdown_grace(),
            closing: None,
        }
    }

    fn closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Shutdown began: the connection gets the grace period.
    fn shutting_down(&mut self) {
        self.closing = Some(Instant::now() + self.grace);
    }

    fn current(&self) -> Option<(Instant, Expiry)> {
        match self.closing {
            Some(at) => Some((at, Expiry::SlowHead)),
            None => self
                .activity
                .deadline(self.header_timeout, self.idle_timeout),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.current().map(|d| d.0)
    }

    /// Judges the state now, which may have changed since the deadline was computed.
    fn expired(&mut self) -> Verdict {
        let now = Instant::now();
        match self.current() {
            Some((at, Expiry::Idle)) if at <= now => {
                // hyper closes an idle connection at once; one whose next
                // head just began gets the head timeout to finish.
                self.closing = Some(now + self.header_timeout);
                Verdict::CloseIdle
            }
            Some((at, Expiry::SlowHead)) if at <= now => Verdict::Drop,
            _ => Verdict::Wait,
        }
    }
}
