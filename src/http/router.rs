//! The seam between the server and the protocols.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::connection::Connection;

/// A complete answer.
pub type Answer = Response<Full<Bytes>>;

/// Answers the requests of one listener. The server calls it for every
/// request; any `Fn(Request, Arc<Connection>) -> impl Future<Output = Answer>`
/// is one.
pub trait Router: Send + Sync {
    /// Answers one request made over `conn`. The answer may carry a
    /// [`crate::http::RequestLog`] in its extensions for the request log.
    fn serve(
        &self,
        req: Request<Incoming>,
        conn: Arc<Connection>,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send>>;
}

impl<F, Fut> Router for F
where
    F: Fn(Request<Incoming>, Arc<Connection>) -> Fut + Send + Sync,
    Fut: Future<Output = Answer> + Send + 'static,
{
    fn serve(
        &self,
        req: Request<Incoming>,
        conn: Arc<Connection>,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send>> {
        Box::pin(self(req, conn))
    }
}
