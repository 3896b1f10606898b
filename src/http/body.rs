//! The one request-body reader, used by EST, the admin API and OCSP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, Request};
use http_body_util::{BodyExt, Limited};

/// Set on a request's extensions by [`crate::http::answer`]; [`read_body`] marks
/// it once the body is read to its end, so that an answer sent with the body
/// left unread can say `Connection: close`.
#[derive(Debug, Clone, Default)]
pub struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// Notes that the body of the request with these extensions was read to its end.
    pub fn mark(extensions: &http::Extensions) {
        if let Some(b) = extensions.get::<BodyRead>() {
            b.0.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn complete(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a body was not read; each protocol maps it to its own error.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit (declared by Content-Length, or as it arrived).
    TooLarge(usize),
    /// Not complete within the timeout.
    Timeout,
    /// The transfer itself failed (a broken chunk, a reset).
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a request body (plain or chunked) within `limit` bytes and
/// `timeout`. A Content-Length over the limit is refused before a byte is read.
///
/// Generic over the body so that the fuzz targets can feed it chunks without
/// a socket; the server passes hyper's `Incoming`.
pub async fn read_body<B>(
    req: Request<B>,
    limit: usize,
    timeout: Duration,
) -> Result<(Parts, Bytes), BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(BodyError::TooLarge(limit));
        }
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => {
            BodyRead::mark(&parts.extensions);
            Ok((parts, collected.to_bytes()))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Broken(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    fn request(body: &'static [u8], declared: Option<usize>) -> Request<Full<Bytes>> {
        let mut req = Request::post("/");
        if let Some(len) = declared {
            req = req.header(header::CONTENT_LENGTH, len);
        }
        let mut req = req
            .body(Full::new(Bytes::from_static(body)))
            .expect("request");
        req.extensions_mut().insert(BodyRead::default());
        req
    }

    /// A body read to its end is marked, so no `Connection: close` is added.
    #[test]
    fn a_body_within_the_limit_is_read_and_marked() {
        let req = request(b"hello", None);
        let flag = req.extensions().get::<BodyRead>().cloned().expect("flag");
        let (_, body) = rt()
            .block_on(read_body(req, 5, Duration::from_secs(1)))
            .expect("read");
        assert_eq!(&body[..], b"hello");
        assert!(flag.complete());
    }

    /// Over the limit, declared or as it arrives, and left unread.
    #[test]
    fn a_body_over_the_limit_is_refused_unread() {
        for (body, declared) in [(&b"hello!"[..], None), (&b"hi"[..], Some(6))] {
            let req = request(body, declared);
            let flag = req.extensions().get::<BodyRead>().cloned().expect("flag");
            let r = rt().block_on(read_body(req, 5, Duration::from_secs(1)));
            assert!(matches!(r, Err(BodyError::TooLarge(5))), "{r:?}");
            assert!(!flag.complete());
        }
    }
}
