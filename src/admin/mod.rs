//! The admin listener: `/metrics` for Prometheus, and `/healthz`.
//! The admin API proper (organisations, profiles, orders) builds on this.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::server::{Connection, RequestLog};

/// Routes one admin request.
pub async fn handle(
    app: &Arc<App>,
    _conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (endpoint, resp) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            app.metrics.stored.set(app.store.cert_count() as i64);
            (
                "metrics",
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    app.metrics.render(),
                ),
            )
        }
        (&Method::GET, "/healthz") => (
            "healthz",
            text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        ),
        (_, "/metrics") | (_, "/healthz") => (
            "unknown",
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed; use GET\n".to_vec(),
            ),
        ),
        _ => (
            "unknown",
            text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        ),
    };
    let mut resp = resp;
    resp.extensions_mut().insert(RequestLog {
        endpoint,
        ..Default::default()
    });
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
