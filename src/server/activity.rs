//! Per-connection request activity, for the timeouts hyper does not offer.
//!
//! hyper 1's `header_read_timeout` starts when a connection becomes idle and
//! is not reset by bytes arriving, so one timer would have to serve as both
//! the idle keep-alive timeout and the request-head timeout. estd wants them
//! apart (a minute of idleness is harmless; ten seconds to send a head is
//! plenty), so a connection's reads and requests are tracked here and a
//! watchdog in [`super`] closes it:
//!
//! - before its first request: `header_read_timeout` after the TLS handshake
//!   (a client that connects and says nothing is not kept);
//! - while a request head is arriving: `header_read_timeout` after its first byte;
//! - while idle between requests: `idle_timeout` after the last answer;
//! - never while a request is in flight (its body has its own timeout).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// "Not set" for the millisecond fields.
const NONE: u64 = u64::MAX;

/// What a connection is doing, as seen from its reads and its requests.
pub struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `base` when the last request was answered; NONE before the first.
    idle_since: AtomicU64,
    /// Milliseconds after `base` when the first byte of the next head arrived.
    head_started: AtomicU64,
    /// Woken when a request finishes, so that the watchdog re-arms its timer.
    finished: Notify,
}

/// Why a connection's time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Idle between requests, or silent since the handshake: close politely.
    Idle,
    /// A request head started but did not finish in time: drop the connection.
    SlowHead,
}

impl Activity {
    /// A connection that has just finished its handshake.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(NONE),
            head_started: AtomicU64::new(NONE),
            finished: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Bytes arrived. The first ones outside a request start the head timer.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A request's head is complete and its handler runs until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when a request finishes.
    pub async fn finished(&self) {
        self.finished.notified().await
    }

    /// When the connection's time is up if nothing changes, and why; `None`
    /// while a request is in flight.
    pub fn deadline(&self, header: Duration, idle: Duration) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NONE {
            return Some((self.at(head) + header, Expiry::SlowHead));
        }
        match self.idle_since.load(Ordering::Relaxed) {
            NONE => Some((self.base + header, Expiry::Idle)),
            t => Some((self.at(t) + idle, Expiry::Idle)),
        }
    }
}

/// Marks a request in flight; dropping it (also when the handler is
/// cancelled) makes the connection idle again.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        a.finished.notify_one();
    }
}

/// An I/O stream that reports reads to its connection's [`Activity`].
pub struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Tracked<I> {
    /// Wraps `inner`.
    pub fn new(inner: I, activity: Arc<Activity>) -> Tracked<I> {
        Tracked { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_follow_the_connection_state() {
        let a = Activity::new();
        let (h, i) = (Duration::from_secs(10), Duration::from_secs(60));
        // Fresh: the head timeout counts from the handshake.
        let (d, why) = a.deadline(h, i).expect("deadline");
        assert_eq!(why, Expiry::Idle);
        assert!(d <= Instant::now() + h);
        // Bytes arrive: a head is under way.
        a.on_read();
        assert_eq!(a.deadline(h, i).map(|x| x.1), Some(Expiry::SlowHead));
        // In flight: no deadline, and reads (the body) do not start a head.
        let guard = a.begin();
        a.on_read();
        assert!(a.deadline(h, i).is_none());
        drop(guard);
        // Answered: idle, with the idle timeout.
        let (d, why) = a.deadline(h, i).expect("deadline");
        assert_eq!(why, Expiry::Idle);
        assert!(d > Instant::now() + h, "idle timeout, not head timeout");
    }
}
